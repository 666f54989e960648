using System.Buffers;

namespace Gateway.Proxy.Requests;

/// <summary>
/// The deliberate edits to a request body: the model name mapped to the upstream's name, and
/// stream_options.include_usage forced on. Every other byte is copied unchanged.
/// </summary>
public static class BodyEditor
{
    private static readonly byte[] True = "true"u8.ToArray();
    private static readonly byte[] IncludeUsageObject = "{\"include_usage\":true}"u8.ToArray();
    private static readonly byte[] IncludeUsageFirst = "\"include_usage\":true,"u8.ToArray();
    private static readonly byte[] IncludeUsageOnly = "\"include_usage\":true"u8.ToArray();
    private static readonly byte[] StreamOptionsMember = "\"stream_options\":{\"include_usage\":true},"u8.ToArray();

    /// <summary>True when the request streams and include_usage is not already on.</summary>
    public static bool NeedsIncludeUsage(in RequestFields fields) => fields.Stream && !fields.IncludeUsage;

    /// <summary>
    /// Applies the edits. Returns false (and no buffer) when nothing changes; otherwise a pooled buffer
    /// the caller returns to <see cref="ArrayPool{T}.Shared"/>, holding <paramref name="length"/> bytes.
    /// </summary>
    /// <param name="encodedModel">The upstream model as a complete JSON string token (with quotes), or null to keep it.</param>
    public static bool TryEdit(ReadOnlySpan<byte> body, in RequestFields fields, byte[]? encodedModel, bool forceIncludeUsage, out byte[]? edited, out int length)
    {
        edited = null; length = 0;
        // At most two edits; keep them as (offset, removed, inserted) sorted by offset.
        Span<int> offsets = stackalloc int[2];
        Span<int> removed = stackalloc int[2];
        var inserts = new EditInserts();
        var count = 0;
        if (encodedModel is not null && fields.ModelTokenStart >= 0)
        {
            offsets[count] = fields.ModelTokenStart; removed[count] = fields.ModelTokenLength; inserts[count] = encodedModel; count++;
        }
        if (forceIncludeUsage && NeedsIncludeUsage(fields))
        {
            int at, rem; byte[] ins;
            if (fields.IncludeUsageStart >= 0) { at = fields.IncludeUsageStart; rem = fields.IncludeUsageLength; ins = True; }
            else if (fields.StreamOptionsStart >= 0 && fields.StreamOptionsIsObject)
            {
                at = fields.StreamOptionsStart + 1; rem = 0; ins = fields.StreamOptionsHasProperties ? IncludeUsageFirst : IncludeUsageOnly;
            }
            else if (fields.StreamOptionsStart >= 0) { at = fields.StreamOptionsStart; rem = fields.StreamOptionsLength; ins = IncludeUsageObject; }
            else { at = fields.RootStart + 1; rem = 0; ins = StreamOptionsMember; }
            if (count == 1 && at < offsets[0])
            {
                offsets[1] = offsets[0]; removed[1] = removed[0]; inserts[1] = inserts[0];
                offsets[0] = at; removed[0] = rem; inserts[0] = ins;
            }
            else { offsets[count] = at; removed[count] = rem; inserts[count] = ins; }
            count++;
        }
        if (count == 0) return false;

        var total = body.Length;
        for (var i = 0; i < count; i++) total += inserts[i].Length - removed[i];
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        var src = 0; var dst = 0;
        for (var i = 0; i < count; i++)
        {
            var keep = offsets[i] - src;
            body.Slice(src, keep).CopyTo(buffer.AsSpan(dst)); dst += keep;
            inserts[i].CopyTo(buffer.AsSpan(dst)); dst += inserts[i].Length;
            src = offsets[i] + removed[i];
        }
        body[src..].CopyTo(buffer.AsSpan(dst)); dst += body.Length - src;
        edited = buffer; length = dst;
        return true;
    }

    [System.Runtime.CompilerServices.InlineArray(2)]
    private struct EditInserts
    {
        private byte[] _first;
    }
}
