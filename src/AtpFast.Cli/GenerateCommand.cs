using System.CommandLine;
using System.Globalization;
using AtpFast.Cpu;

namespace AtpFast.Cli;

/// <summary><c>atpfast generate</c>: greedy continuation, the quickest sanity check of an imported model.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "ONNX file (default: the embedded demo model)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer file (default: found next to the model)" };
        var prompt = new Option<string?>("--prompt") { Description = "prompt text (needs a tokenizer)" };
        var ids = new Option<string?>("--ids") { Description = "prompt as comma-separated token ids, e.g. 1,403,407" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "tokens to generate", DefaultValueFactory = _ => 20 };
        var command = new Command("generate", "Greedy continuation of a prompt; prints the text and the ids (prompt included).")
        {
            model, tokenizer, prompt, ids, maxTokens,
        };
        command.Validators.Add(result =>
        {
            if ((result.GetValue(prompt) is null) == (result.GetValue(ids) is null))
                result.AddError("give exactly one of --prompt or --ids");
        });
        command.SetAction(parse =>
        {
            if (parse.GetValue(maxTokens) < 1) throw new AtpFastException("--max-tokens must be at least 1");
            var source = ModelSource.Load(parse.GetValue(model), parse.GetValue(tokenizer));
            int[] promptIds = parse.GetValue(prompt) is { } text
                ? source.RequireTokenizer().Encode(text)
                : ParseIds(parse.GetValue(ids)!);
            int[] all = Generate(source.Model.Weights, promptIds, parse.GetValue(maxTokens));
            if (source.Tokenizer is { } tok)
                Console.WriteLine(tok.Decode(all));
            Console.WriteLine(string.Join(',', all));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Greedy decoding with a full forward per step (models here are small; no KV cache yet).</summary>
    internal static int[] Generate(ModelWeights weights, int[] promptIds, int maxTokens)
    {
        using var backend = new CpuBackend(weights);
        int vocab = weights.Config.VocabSize;
        var tokens = new List<int>(promptIds);
        for (int step = 0; step < maxTokens && tokens.Count < weights.Config.MaxSequenceLength; step++)
        {
            var logits = new float[tokens.Count * vocab];
            backend.Forward(tokens.ToArray(), 1, tokens.Count, logits);
            var last = logits.AsSpan((tokens.Count - 1) * vocab, vocab);
            tokens.Add(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(last));
        }
        return [.. tokens];
    }

    private static int[] ParseIds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var result = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out result[i]))
                throw new AtpFastException($"--ids: '{parts[i]}' (item {i + 1}) is not an integer token id");
        }
        if (result.Length == 0) throw new AtpFastException("--ids: empty prompt");
        return result;
    }
}
