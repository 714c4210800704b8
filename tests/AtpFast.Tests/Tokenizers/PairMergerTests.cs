using AtpFast.Tokenizers;

namespace AtpFast.Tests.Tokenizers;

/// <summary>The queue-based merge loop gives exactly what the plain loop of GPT-2's encoder.py / llama2.c
/// gives: rescan, merge the lowest-rank pair (leftmost on ties), repeat.</summary>
public sealed class PairMergerTests
{
    private static readonly Dictionary<(string, string), int> Ranks = new()
    {
        [("a", "b")] = 0, [("b", "a")] = 1, [("ab", "a")] = 2, [("a", "a")] = 3, [("aa", "b")] = 4,
        [("ba", "b")] = 5, [("ab", "ab")] = 6, [("c", "a")] = 7, [("abab", "c")] = 8, [("b", "b")] = 9,
    };

    private static bool TryRank(string left, string right, out int rank) => Ranks.TryGetValue((left, right), out rank);

    private static List<string> RescanMerge(IReadOnlyList<string> symbols)
    {
        var current = symbols.ToList();
        while (true)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < current.Count; i++)
            {
                if (TryRank(current[i], current[i + 1], out int rank) && rank < bestRank)
                {
                    (best, bestRank) = (i, rank);
                }
            }
            if (best < 0)
            {
                return current;
            }
            current[best] += current[best + 1];
            current.RemoveAt(best + 1);
        }
    }

    [Fact]
    public void Matches_the_rescanning_loop_on_random_sequences()
    {
        var random = new Random(1234);
        for (int trial = 0; trial < 2000; trial++)
        {
            var symbols = Enumerable.Range(0, random.Next(0, 24)).Select(_ => "abc"[random.Next(3)].ToString()).ToList();
            Assert.Equal(RescanMerge(symbols), PairMerger.Merge(symbols, TryRank));
        }
    }
}
