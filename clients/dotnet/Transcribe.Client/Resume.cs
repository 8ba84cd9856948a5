using Grpc.Core;
using Transcribe.V1;

namespace Transcribe.Client;

/// <summary>How a stream is resumed: on by default.</summary>
public sealed record ResumeOptions
{
    /// <summary>Resume a stream the gateway ends UNAVAILABLE with a ResumePoint.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Resumes in a row without a new final result before the last error is thrown.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Seconds of uncommitted audio kept for a resend; older audio is dropped.</summary>
    public double MaxBufferSeconds { get; init; } = 60;

    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(250);
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(5);
    public double BackoffMultiplier { get; init; } = 2;

    /// <summary>Automatic resume turned off.</summary>
    public static ResumeOptions Off { get; } = new() { Enabled = false };
}

/// <summary>What the next stream sends after a failure; <see cref="Resumable"/> false: give up.</summary>
public readonly record struct ResumePlan(bool Resumable, double StartOffsetSeconds, long ResendFromByte, long ResendBytes);

/// <summary>
/// The decisions behind automatic resume, without I/O. Byte positions count from the first byte
/// of audio the application gave the library, so they span every stream of one transcription
/// (clients/testdata/README.md, <c>resume.json</c>).
/// </summary>
public static class Resumption
{
    /// <summary>Times are rounded to microseconds; a millisecond of margin never drops a needed byte.</summary>
    const double CommitMarginSeconds = 0.001;

    /// <summary>Whether a stream that ended with <paramref name="code"/> may be resumed.</summary>
    public static bool ShouldResume(StatusCode code, ResumePoint? resumePoint) =>
        code == StatusCode.Unavailable && resumePoint is not null;

    /// <summary>Bytes per frame of raw audio in <paramref name="config"/>; null for containerised audio.</summary>
    public static int? FrameBytes(StreamingConfig config)
    {
        int width = config.Encoding switch
        {
            AudioEncoding.Linear16 => 2,
            AudioEncoding.Linear32 => 4,
            AudioEncoding.Mulaw or AudioEncoding.Alaw => 1,
            _ => 0,
        };
        if (width == 0 || config.SampleRate == 0)
        {
            return null;
        }
        return width * (int)Math.Max(config.Channels, 1u);
    }

    /// <summary>
    /// The first byte still needed once a final result ends at <paramref name="committedSeconds"/>
    /// (which includes the stream's start offset).
    /// </summary>
    public static long KeepFromByte(
        long streamStartByte, double streamStartOffsetSeconds, double committedSeconds, uint sampleRate, int frameBytes)
    {
        var seconds = committedSeconds - streamStartOffsetSeconds - CommitMarginSeconds;
        var frames = (long)Math.Floor(seconds * sampleRate + 1e-6);
        return streamStartByte + Math.Max(0, frames) * frameBytes;
    }

    /// <summary>
    /// What to resend after a stream that began at <paramref name="streamStartByte"/> failed with
    /// <paramref name="resumePoint"/> while the bytes from <paramref name="keptFromByte"/> to
    /// <paramref name="sentBytes"/> are kept.
    /// </summary>
    public static ResumePlan Plan(
        int? frameBytes, long streamStartByte, long keptFromByte, long sentBytes, ResumePoint? resumePoint)
    {
        if (frameBytes is null || resumePoint is null)
        {
            return default;
        }
        var from = streamStartByte + (long)resumePoint.CommittedBytes;
        if (from < keptFromByte || from > sentBytes)
        {
            return default;
        }
        return new ResumePlan(true, resumePoint.CommittedSeconds, from, sentBytes - from);
    }

    /// <summary>Exponential backoff with jitter in its upper half; <paramref name="random"/> in [0, 1).</summary>
    public static TimeSpan Backoff(int attempt, ResumeOptions options, double random)
    {
        var ceiling = Math.Min(
            options.MaxBackoff.TotalMilliseconds,
            options.InitialBackoff.TotalMilliseconds * Math.Pow(options.BackoffMultiplier, Math.Max(0, attempt - 1)));
        return TimeSpan.FromMilliseconds(Math.Round(ceiling * (0.5 + random / 2)));
    }
}

/// <summary>
/// The audio not yet committed, in order, at most <see cref="MaxBytes"/> of it: appending past the
/// bound drops the oldest bytes (a resume that needs them is then impossible).
/// </summary>
public sealed class KeptAudio(long maxBytes)
{
    readonly LinkedList<ReadOnlyMemory<byte>> _chunks = new();

    public long MaxBytes { get; } = maxBytes >= 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes));

    /// <summary>Bytes given so far.</summary>
    public long SentBytes { get; private set; }

    /// <summary>The position of the first byte still kept.</summary>
    public long KeptFromByte { get; private set; }

    /// <summary>Bytes kept now.</summary>
    public long Size { get; private set; }

    /// <summary>Keeps a copy of <paramref name="chunk"/> (the caller may reuse its buffer).</summary>
    public void Append(ReadOnlySpan<byte> chunk)
    {
        SentBytes += chunk.Length;
        _chunks.AddLast(chunk.ToArray());
        Size += chunk.Length;
        if (Size > MaxBytes)
        {
            DropBefore(SentBytes - MaxBytes);
        }
    }

    /// <summary>Drops the kept bytes before position <paramref name="position"/>.</summary>
    public void DropBefore(long position)
    {
        var excess = Math.Min(position, SentBytes) - KeptFromByte;
        while (excess > 0 && _chunks.First is { } first)
        {
            if (first.Value.Length <= excess)
            {
                _chunks.RemoveFirst();
                excess -= first.Value.Length;
                KeptFromByte += first.Value.Length;
                Size -= first.Value.Length;
            }
            else
            {
                first.Value = first.Value[(int)excess..];
                KeptFromByte += excess;
                Size -= excess;
                excess = 0;
            }
        }
    }

    /// <summary>The kept bytes from <paramref name="position"/> on.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> From(long position)
    {
        if (position < KeptFromByte || position > SentBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(position), $"byte {position} is not kept ({KeptFromByte} to {SentBytes})");
        }
        var result = new List<ReadOnlyMemory<byte>>();
        var skip = position - KeptFromByte;
        foreach (var chunk in _chunks)
        {
            if (skip >= chunk.Length)
            {
                skip -= chunk.Length;
                continue;
            }
            result.Add(skip > 0 ? chunk[(int)skip..] : chunk);
            skip = 0;
        }
        return result;
    }
}
