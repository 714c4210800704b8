using AtpFast.Onnx;
using AtpFast.Tokenizers;

namespace AtpFast.Cli;

/// <summary>A model the CLI runs: the embedded IOI demo model, or an ONNX file with the tokenizer found
/// next to it (or given explicitly).</summary>
internal sealed class ModelSource
{
    private ModelSource(ImportedModel model, ITokenizer? tokenizer, string description)
    {
        Model = model;
        Tokenizer = tokenizer;
        Description = description;
    }

    public ImportedModel Model { get; }

    /// <summary>Null when no tokenizer file was found (token ids still work).</summary>
    public ITokenizer? Tokenizer { get; }

    public string Description { get; }

    public static ModelSource Embedded() =>
        new(OnnxImporter.Load(DemoModel.ModelBytes()), DemoModel.Tokenizer(), "embedded IOI demo model (GPT-2 style)");

    /// <summary>Loads <paramref name="modelPath"/>, or the embedded model when it is null.</summary>
    public static ModelSource Load(string? modelPath, string? tokenizerPath)
    {
        if (modelPath is null)
            return tokenizerPath is null ? Embedded() : new ModelSource(OnnxImporter.Load(DemoModel.ModelBytes()),
                TokenizerLoader.FromFile(tokenizerPath), "embedded IOI demo model (GPT-2 style)");
        if (!File.Exists(modelPath))
            throw new AtpFastException($"model file not found: {modelPath}");
        var model = OnnxImporter.Load(modelPath);
        ITokenizer? tokenizer = null;
        if (tokenizerPath is not null)
        {
            tokenizer = TokenizerLoader.FromFile(tokenizerPath);
        }
        else
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
            try { tokenizer = TokenizerLoader.FromDirectory(dir); }
            catch (TokenizerException) { tokenizer = null; }
        }
        if (tokenizer is not null && tokenizer.VocabSize > model.Config.VocabSize)
            throw new AtpFastException(
                $"tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {model.Config.VocabSize}");
        return new ModelSource(model, tokenizer, modelPath);
    }

    public ITokenizer RequireTokenizer() => Tokenizer ?? throw new AtpFastException(
        $"no tokenizer found for {Description}: put tokenizer.json, encoder.json + vocab.bpe or vocab.json next to " +
        "the model, pass --tokenizer, or give token ids instead of text");
}
