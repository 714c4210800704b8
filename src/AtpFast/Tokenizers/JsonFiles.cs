using System.Text.Json;

namespace AtpFast.Tokenizers;

/// <summary>Reads tokenizer files with clear errors; uses <see cref="JsonDocument"/> so it stays AOT-safe.</summary>
internal static class JsonFiles
{
    public static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TokenizerException($"Cannot read tokenizer file '{path}': {e.Message}", e);
        }
    }

    public static JsonDocument Parse(string json, string source)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{source} is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>A JSON array of strings, e.g. the word-level vocab or the "vocab" of stories260K.</summary>
    public static string[] StringArray(JsonElement element, string source)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new TokenizerException($"{source}: expected a JSON array of token strings, found {element.ValueKind}.");
        }
        var tokens = new string[element.GetArrayLength()];
        int i = 0;
        foreach (var item in element.EnumerateArray())
        {
            tokens[i] = item.ValueKind == JsonValueKind.String
                ? item.GetString()!
                : throw new TokenizerException($"{source}: entry {i} is {item.ValueKind}, expected a string.");
            i++;
        }
        return tokens;
    }

    /// <summary>A JSON object mapping token → integer id (encoder.json, tokenizer.json model.vocab).</summary>
    public static Dictionary<string, int> TokenIdMap(JsonElement element, string source)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerException($"{source}: expected a JSON object token → id, found {element.ValueKind}.");
        }
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetInt32(out int id))
            {
                throw new TokenizerException($"{source}: token '{property.Name}' has a non-integer id.");
            }
            map[property.Name] = id;
        }
        return map;
    }
}
