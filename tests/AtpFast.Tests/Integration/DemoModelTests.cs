using AtpFast.Cpu;
using AtpFast.Onnx;
using AtpFast.Tasks;

namespace AtpFast.Tests.Integration;

/// <summary>The embedded default model: it loads from the library's resources, its held-out task file parses with
/// its tokenizer into equal-length pairs, and it solves the task (the IO name beats the subject on clean prompts).</summary>
public sealed class DemoModelTests
{
    [Fact]
    public void Embedded_model_tokenizer_and_tasks_load()
    {
        var model = OnnxImporter.Load(DemoModel.ModelBytes());
        var tokenizer = DemoModel.Tokenizer();
        Assert.Equal(ModelFamily.Gpt2, model.Config.Family);
        Assert.Equal(model.Config.VocabSize, tokenizer.VocabSize);
        var pairs = TaskFile.Parse(DemoModel.TasksJsonl(), tokenizer, model.Config.VocabSize);
        Assert.True(pairs.Count >= 20, $"{pairs.Count} pairs");
        Assert.All(pairs, p => Assert.Equal(p.Clean.Length, p.Noise.Length));
    }

    [Fact]
    public void Held_out_pairs_have_a_positive_clean_logit_difference()
    {
        var model = OnnxImporter.Load(DemoModel.ModelBytes());
        var pairs = TaskFile.Parse(DemoModel.TasksJsonl(), DemoModel.Tokenizer(), model.Config.VocabSize);
        using var backend = new CpuBackend(model.Weights);
        int vocab = model.Config.VocabSize, positive = 0;
        double sum = 0;
        foreach (var pair in pairs)
        {
            var logits = new float[pair.Length * vocab];
            backend.Forward(pair.Clean, 1, pair.Length, logits);
            int last = (pair.Length - 1) * vocab;
            float ld = logits[last + pair.Answer] - logits[last + pair.Wrong];
            sum += ld;
            if (ld > 0) positive++;
        }
        Assert.True(sum / pairs.Count > 1.0, $"mean held-out logit difference {sum / pairs.Count:F2}");
        Assert.True(positive >= 0.9 * pairs.Count, $"{positive}/{pairs.Count} positive");
    }
}
