namespace AtpFast.Tokenizers;

/// <summary>Gives the rank of merging two adjacent symbols (lower merges first), or false if they never merge.</summary>
internal delegate bool TryGetMergeRank(string left, string right, out int rank);

/// <summary>
/// The merge loop shared by BPE and sentencepiece-style encoders: repeatedly merge the adjacent pair with the
/// lowest rank, the leftmost one on ties, until no pair has a rank. Symbols sit in a linked list and candidate
/// pairs in a min-queue keyed by (rank, position), so a sequence of n symbols costs O(n log n) instead of the
/// O(n²) of rescanning after every merge; the result is the same as rescanning.
/// </summary>
internal static class PairMerger
{
    /// <summary>Merges <paramref name="symbols"/> and returns the final symbols in order.</summary>
    public static List<string> Merge(IReadOnlyList<string> symbols, TryGetMergeRank tryGetRank)
    {
        int n = symbols.Count;
        var current = new string?[n];
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++)
        {
            current[i] = symbols[i];
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }

        var queue = new PriorityQueue<(int Left, int Right), (int Rank, int Left)>();
        void Consider(int left, int right)
        {
            if (left >= 0 && right >= 0 && tryGetRank(current[left]!, current[right]!, out int rank))
            {
                queue.Enqueue((left, right), (rank, left));
            }
        }
        for (int i = 0; i + 1 < n; i++)
        {
            Consider(i, i + 1);
        }

        while (queue.TryDequeue(out var pair, out var priority))
        {
            var (left, right) = pair;
            // Stale entries: a side was merged away, or the pair at this place has changed (a rank names one pair).
            if (current[left] is null || current[right] is null || next[left] != right
                || !tryGetRank(current[left]!, current[right]!, out int rank) || rank != priority.Rank)
            {
                continue;
            }
            current[left] = current[left] + current[right];
            current[right] = null;
            next[left] = next[right];
            if (next[left] >= 0)
            {
                prev[next[left]] = left;
            }
            Consider(prev[left], left);
            Consider(left, next[left]);
        }

        var merged = new List<string>();
        for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i])
        {
            merged.Add(current[i]!);
        }
        return merged;
    }
}
