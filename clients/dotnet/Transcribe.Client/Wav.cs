using System.Buffers.Binary;
using Transcribe.V1;

namespace Transcribe.Client;

// The WAV header is read here: the few fields the client needs and where the data chunk starts,
// also for a WAV written to a pipe whose data size is unknown (0 or 0xFFFFFFFF); System.* has no
// WAV reader and NAudio's needs a whole-file stream and is Windows-centred. The rules are
// clients/testdata/README.md's.

/// <summary>What a WAV header says about its audio.</summary>
public sealed record WavInfo(int Format, int Channels, int SampleRate, int ByteRate, int Bits, int DataOffset, int DataSize)
{
    const int FormatPcm = 0x0001;
    const int FormatExtensible = 0xFFFE;

    /// <summary>The samples are 16-bit PCM, sendable as raw linear16.</summary>
    public bool IsLinear16 => (Format is FormatPcm or FormatExtensible) && Bits == 16;

    /// <summary>Integer PCM (of any width): its header's byte rate is the real-time pace.</summary>
    public bool IsIntegerPcm => Format == FormatPcm;

    /// <summary>Reads the RIFF/WAVE header of a whole file; null when it is not a WAV file.</summary>
    public static WavInfo? Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < 12 || !data[..4].SequenceEqual("RIFF"u8) || !data[8..12].SequenceEqual("WAVE"u8))
        {
            return null;
        }
        (int Format, int Channels, int SampleRate, int ByteRate, int Bits)? fmt = null;
        var pos = 12;
        while (pos + 8 <= data.Length)
        {
            var id = data.Slice(pos, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(data[(pos + 4)..]);
            var body = pos + 8;
            if (id.SequenceEqual("fmt "u8))
            {
                if (size < 16 || body + 16 > data.Length)
                {
                    return null;
                }
                var f = data[body..];
                int format = BinaryPrimitives.ReadUInt16LittleEndian(f);
                if (format == FormatExtensible && size >= 40 && body + 26 <= data.Length)
                {
                    format = BinaryPrimitives.ReadUInt16LittleEndian(f[24..]); // the sub-format GUID
                }
                fmt = (format, (int)BinaryPrimitives.ReadUInt16LittleEndian(f[2..]),
                    (int)BinaryPrimitives.ReadUInt32LittleEndian(f[4..]),
                    (int)BinaryPrimitives.ReadUInt32LittleEndian(f[8..]),
                    (int)BinaryPrimitives.ReadUInt16LittleEndian(f[14..]));
            }
            else if (id.SequenceEqual("data"u8))
            {
                if (fmt is not { } h || h.Channels == 0 || h.SampleRate <= 0)
                {
                    return null;
                }
                var available = data.Length - body;
                var dataSize = size > 0 && size <= available ? (int)size : available;
                return new WavInfo(h.Format, h.Channels, h.SampleRate, h.ByteRate, h.Bits, body, dataSize);
            }
            var next = body + (long)size + (size & 1); // chunks are padded to an even size
            if (next > data.Length)
            {
                return null;
            }
            pos = (int)next;
        }
        return null;
    }
}

/// <summary>
/// What to send for a file's bytes, given --encoding and --sample-rate (the rules of every client
/// language): a 16-bit PCM WAV file as raw linear16 (its data chunk, the header's rate and
/// channels); any other file whole, as containerised audio, paced at the header's byte rate for
/// integer PCM of another width, else at <see cref="AssumedByteRate"/>.
/// </summary>
public sealed record AudioPlan(
    AudioEncoding Encoding, uint SampleRate, uint Channels, int ByteRate, int FrameBytes, int ChunkBytes,
    int PayloadOffset, int PayloadLength)
{
    /// <summary>Pacing rate of compressed audio: 128 kbit/s, a common MP3 bit rate.</summary>
    public const int AssumedByteRate = 16_000;

    public static AudioPlan ForFile(ReadOnlySpan<byte> data, AudioEncoding encoding, uint sampleRate, int chunkMs)
    {
        var wav = WavInfo.Parse(data);
        uint channels = 0;
        int offset = 0, length = data.Length;
        if (encoding == AudioEncoding.Unspecified && wav is { IsLinear16: true })
        {
            encoding = AudioEncoding.Linear16;
        }
        if (encoding != AudioEncoding.Unspecified && wav is not null)
        {
            (offset, length) = (wav.DataOffset, wav.DataSize);
            sampleRate = sampleRate > 0 ? sampleRate : (uint)wav.SampleRate;
            channels = (uint)wav.Channels;
        }
        var rate = RawByteRate(encoding, sampleRate, channels);
        if (rate == 0)
        {
            rate = wav is { IsIntegerPcm: true, ByteRate: > 0 } ? wav.ByteRate : AssumedByteRate;
        }
        var frame = Math.Max(sampleRate > 0 ? RawByteRate(encoding, 1, channels) : 0, 1);
        var chunk = Math.Max(frame, (int)((long)rate * chunkMs / 1000) / frame * frame);
        return new AudioPlan(encoding, sampleRate, channels, rate, frame, chunk, offset, length);
    }

    /// <summary>
    /// How many of <paramref name="length"/> bytes read from a live input (stdin, an HTTP
    /// stream) make whole frames of <paramref name="frameBytes"/>: those are sent now, the rest
    /// of a frame cut short waits for the next read (clients/testdata/README.md, frame_bytes).
    /// </summary>
    public static int WholeFrames(int length, int frameBytes) =>
        frameBytes <= 1 ? length : length - length % frameBytes;

    /// <summary>Byte rate of raw audio (channels 0 counts as 1), or 0 when it is not fixed.</summary>
    public static int RawByteRate(AudioEncoding encoding, uint sampleRate, uint channels)
    {
        var perSample = encoding switch
        {
            AudioEncoding.Linear16 => 2,
            AudioEncoding.Linear32 => 4,
            AudioEncoding.Mulaw or AudioEncoding.Alaw => 1,
            _ => 0,
        };
        return (int)Math.Min(int.MaxValue, (long)perSample * sampleRate * Math.Max(channels, 1u));
    }
}
