using System.Buffers.Binary;
using Transcribe.V1;

namespace TranscribeClient;

/// <summary>A failure to read the audio input, reported with a status name like the gateway's.</summary>
sealed class InputException(string status, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public string Status { get; } = status;
}

/// <summary>What a WAV header says about its audio.</summary>
sealed record WavInfo(int Format, int Channels, int SampleRate, int ByteRate, int Bits, int DataOffset, int DataSize)
{
    const int FormatPcm = 0x0001;
    const int FormatExtensible = 0xFFFE;

    /// <summary>The samples are 16-bit PCM, sendable as raw linear16.</summary>
    public bool IsLinear16 => (Format is FormatPcm or FormatExtensible) && Bits == 16;

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

/// <summary>The audio to send, and what the config must say about it.</summary>
/// <remarks>
/// A 16-bit PCM WAV file is sent as raw linear16 (its data chunk only) with the header's sample
/// rate and channels; any other WAV file is sent whole as containerised audio, paced at its
/// header's byte rate; other files are sent whole as containerised audio, paced at
/// <see cref="AssumedByteRate"/>. An explicit --encoding sends the WAV data chunk (or the whole
/// non-WAV file) with that encoding. --sample-rate always overrides the header. An HTTP stream
/// is relayed as it arrives, paced only when its byte rate follows from --encoding and
/// --sample-rate.
/// </remarks>
sealed class AudioSource : IDisposable
{
    /// <summary>Pacing rate of compressed files: 128 kbit/s, a common MP3 bit rate.</summary>
    public const int AssumedByteRate = 16_000;

    ReadOnlyMemory<byte> _file;
    int _filePosition;
    HttpClient? _http;
    HttpResponseMessage? _response;
    Stream? _stream;

    AudioSource(string label) => Label = label;

    public string Label { get; }
    public AudioEncoding Encoding { get; private set; }
    public uint SampleRate { get; private set; }
    public uint Channels { get; private set; }
    /// <summary>Bytes per second of audio; 0 when unknown (an HTTP stream of compressed audio).</summary>
    public int ByteRate { get; private set; }
    public int ChunkBytes { get; private set; }

    public static async Task<AudioSource> OpenAsync(Options o, CancellationToken cancellationToken)
    {
        var source = o.Url is not null
            ? await OpenUrlAsync(o.Url, o, cancellationToken)
            : await OpenFileAsync(o.File!, o, cancellationToken);
        var frame = source.SampleRate > 0 ? RawByteRate(source.Encoding, 1, source.Channels) : 0;
        frame = Math.Max(frame, 1);
        var rate = source.ByteRate > 0 ? source.ByteRate : AssumedByteRate;
        source.ChunkBytes = Math.Max(frame, (int)((long)rate * o.ChunkMs / 1000) / frame * frame);
        return source;
    }

    static async Task<AudioSource> OpenFileAsync(string path, Options o, CancellationToken cancellationToken)
    {
        byte[] data;
        try
        {
            data = await System.IO.File.ReadAllBytesAsync(path, cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException("INVALID_ARGUMENT", $"cannot read {path}: {e.Message}", e);
        }
        var source = new AudioSource(path) { Encoding = o.Encoding, SampleRate = o.SampleRate, _file = data };
        var wav = WavInfo.Parse(data);
        if (source.Encoding == AudioEncoding.Unspecified && wav is { IsLinear16: true })
        {
            source.Encoding = AudioEncoding.Linear16;
        }
        if (source.Encoding != AudioEncoding.Unspecified && wav is not null)
        {
            source._file = data.AsMemory(wav.DataOffset, wav.DataSize);
            source.SampleRate = source.SampleRate > 0 ? source.SampleRate : (uint)wav.SampleRate;
            source.Channels = (uint)wav.Channels;
        }
        source.ByteRate = RawByteRate(source.Encoding, source.SampleRate, source.Channels);
        if (source.ByteRate == 0)
        {
            source.ByteRate = wav is { ByteRate: > 0 } ? wav.ByteRate : AssumedByteRate;
        }
        return source;
    }

    static async Task<AudioSource> OpenUrlAsync(string url, Options o, CancellationToken cancellationToken)
    {
        var source = new AudioSource(url) { Encoding = o.Encoding, SampleRate = o.SampleRate };
        source.ByteRate = RawByteRate(source.Encoding, source.SampleRate, 0);
        source._http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        source._http.DefaultRequestHeaders.UserAgent.ParseAdd("transcribe-client");
        try
        {
            source._response = await source._http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!source._response.IsSuccessStatusCode)
            {
                throw new InputException("UNAVAILABLE",
                    $"cannot read {url}: {(int)source._response.StatusCode} {source._response.ReasonPhrase}");
            }
            source._stream = await source._response.Content.ReadAsStreamAsync(cancellationToken);
            return source;
        }
        catch (Exception e) when (e is InvalidOperationException or UriFormatException or HttpRequestException)
        {
            source.Dispose();
            var status = e is HttpRequestException ? "UNAVAILABLE" : "INVALID_ARGUMENT";
            throw new InputException(status, $"cannot read {url}: {e.Message}", e);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>Byte rate of raw audio (channels 0 counts as 1), or 0 when it is not fixed.</summary>
    static int RawByteRate(AudioEncoding encoding, uint sampleRate, uint channels)
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

    /// <summary>
    /// Reads the next chunk: a full one from a file, what has arrived from an HTTP stream. 0 at
    /// the end of the audio.
    /// </summary>
    public async ValueTask<int> ReadAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        if (_stream is null)
        {
            var chunk = _file.Slice(_filePosition, Math.Min(buffer.Length, _file.Length - _filePosition));
            chunk.CopyTo(buffer);
            _filePosition += chunk.Length;
            return chunk.Length;
        }
        try
        {
            return await _stream.ReadAsync(buffer, cancellationToken);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            cancellationToken.ThrowIfCancellationRequested(); // Ctrl+C, not a failure
            throw new InputException("UNAVAILABLE", $"cannot read {Label}: {e.Message}", e);
        }
    }

    public void Dispose()
    {
        _stream?.Dispose();
        _response?.Dispose();
        _http?.Dispose();
    }
}
