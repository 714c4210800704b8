namespace AtpFast.Tests.Tokenizers;

/// <summary>The embedded IOI model resources load, or, in a build without them, fail with an error naming the
/// missing resource.</summary>
public sealed class DemoModelTests
{
    private static bool ResourcesEmbedded =>
        typeof(DemoModel).Assembly.GetManifestResourceNames().Contains("AtpFast.Models.ioi-gpt2.vocab.json");

    [Fact]
    public void Tokenizer_and_tasks_load_or_name_the_missing_resource()
    {
        if (ResourcesEmbedded)
        {
            var tokenizer = DemoModel.Tokenizer();
            Assert.True(tokenizer.VocabSize > 0);
            Assert.NotEmpty(DemoModel.TasksJsonl().Trim());
            Assert.NotEmpty(DemoModel.ModelBytes());
        }
        else
        {
            var error = Assert.Throws<AtpFastException>(() => DemoModel.Tokenizer());
            Assert.Contains("AtpFast.Models.ioi-gpt2.vocab.json", error.Message, StringComparison.Ordinal);
        }
    }
}
