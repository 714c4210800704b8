namespace AtpFast.Attribution;

/// <summary>
/// Cost of verified recall (spec §7): a method's ranking is verified by exact patching in its order; the cost to
/// recall the true top K = the method's own cost + the verification cost of every node up to the last true top-K
/// node in its order. The truth comes from exhaustive exact patching; ties in the truth are broken by node id.
/// </summary>
public static class VerifiedRecall
{
    /// <summary>Nodes ordered by a score, largest first, ties by id.</summary>
    /// <param name="ids">Node ids to order.</param>
    /// <param name="score">Score per id (indexed by id).</param>
    /// <param name="tieBreak">Optional second key per id, larger first (hierarchical depth).</param>
    public static int[] Rank(IEnumerable<int> ids, IReadOnlyList<double> score, IReadOnlyList<double>? tieBreak = null)
    {
        int[] order = [.. ids];
        Array.Sort(order, (a, b) =>
        {
            int c = score[b].CompareTo(score[a]);
            if (c == 0 && tieBreak is not null) c = tieBreak[b].CompareTo(tieBreak[a]);
            return c != 0 ? c : a.CompareTo(b);
        });
        return order;
    }

    /// <summary>cost(K) for K = 1..<paramref name="maxK"/>, in forward-pass equivalents per pair.</summary>
    /// <param name="truthRanking">The selected ids by true |effect|, largest first (see <see cref="Rank"/>).</param>
    /// <param name="methodRanking">The same ids in the method's order.</param>
    /// <param name="verifyCost">Cost of verifying each id (indexed by id), per pair.</param>
    /// <param name="methodCost">The method's own cost per pair.</param>
    /// <param name="maxK">Largest K.</param>
    public static double[] Curve(int[] truthRanking, int[] methodRanking, IReadOnlyList<double> verifyCost, double methodCost, int maxK)
    {
        ArgumentNullException.ThrowIfNull(truthRanking);
        ArgumentNullException.ThrowIfNull(methodRanking);
        if (truthRanking.Length != methodRanking.Length) throw new ArgumentException("the rankings hold different node sets");
        maxK = Math.Min(maxK, truthRanking.Length);
        var position = new Dictionary<int, int>(methodRanking.Length);
        for (int i = 0; i < methodRanking.Length; i++) position[methodRanking[i]] = i;
        var prefix = new double[methodRanking.Length + 1];
        for (int i = 0; i < methodRanking.Length; i++) prefix[i + 1] = prefix[i] + verifyCost[methodRanking[i]];
        var curve = new double[maxK];
        int last = -1;
        for (int k = 0; k < maxK; k++)
        {
            last = Math.Max(last, position.TryGetValue(truthRanking[k], out int p) ? p
                : throw new ArgumentException($"node id {truthRanking[k]} is missing from the method's ranking"));
            curve[k] = methodCost + prefix[last + 1];
        }
        return curve;
    }

    /// <summary>|method top K ∩ true top K| / K.</summary>
    public static double RecallAtK(int[] truthRanking, int[] methodRanking, int k)
    {
        k = Math.Min(k, truthRanking.Length);
        var top = truthRanking.Take(k).ToHashSet();
        return methodRanking.Take(k).Count(top.Contains) / (double)k;
    }
}
