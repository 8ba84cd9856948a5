using System.Buffers.Binary;
using Transcribe.V1;

using Transcribe.Client;

namespace TranscribeCli;

/// <summary>A failure to read the audio input, reported with a status name like the gateway's.</summary>
sealed class InputException(string status, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public string Status { get; } = status;
}

/// <summary>The audio to send, and what the config must say about it.</summary>
/// <remarks>
/// A 16-bit PCM WAV file is sent as raw linear16 (its data chunk only) with the header's sample
/// rate and channels; any other WAV file is sent whole as containerised audio, paced at its
/// header's byte rate; other files are sent whole as containerised audio, paced at
/// <see cref="AudioPlan.AssumedByteRate"/>. An explicit --encoding sends the WAV data chunk (or the whole
/// non-WAV file) with that encoding. --sample-rate always overrides the header. An HTTP stream
/// is relayed as it arrives, paced only when its byte rate follows from --encoding and
/// --sample-rate.
/// </remarks>
sealed class AudioSource : IDisposable
{
    ReadOnlyMemory<byte> _file;
    int _filePosition;
    HttpClient? _http;
    HttpResponseMessage? _response;
    Stream? _stream;
    // Bytes of a sample frame cut short by the last read of a stream, sent with the next chunk.
    byte[] _partial = [];

    AudioSource(string label) => Label = label;

    public string Label { get; }
    public AudioEncoding Encoding { get; private set; }
    public uint SampleRate { get; private set; }
    public uint Channels { get; private set; }
    /// <summary>Bytes per second of audio; 0 when unknown (an HTTP stream of compressed audio).</summary>
    public int ByteRate { get; private set; }
    public int ChunkBytes { get; private set; }
    /// <summary>Bytes of one sample of every channel (1 for containerised audio): every chunk of
    /// raw audio is a whole number of them (clients/testdata/README.md).</summary>
    public int FrameBytes { get; private set; } = 1;

    public static async Task<AudioSource> OpenAsync(Options o, CancellationToken cancellationToken)
    {
        var source = o.Url is not null
            ? await OpenUrlAsync(o.Url, o, cancellationToken)
            : await OpenFileAsync(o.File!, o, cancellationToken);
        var frame = source.SampleRate > 0 ? AudioPlan.RawByteRate(source.Encoding, 1, source.Channels) : 0;
        frame = Math.Max(frame, 1);
        var rate = source.ByteRate > 0 ? source.ByteRate : AudioPlan.AssumedByteRate;
        source.ChunkBytes = Math.Max(frame, (int)((long)rate * o.ChunkMs / 1000) / frame * frame);
        source.FrameBytes = frame;
        return source;
    }

    static async Task<AudioSource> OpenFileAsync(string path, Options o, CancellationToken cancellationToken)
    {
        if (path == "-")
        {
            // stdin, sent as it arrives (no pacing): raw audio, its rate from the flags.
            return new AudioSource("stdin")
            {
                Encoding = o.Encoding, SampleRate = o.SampleRate, _stream = Console.OpenStandardInput(),
            };
        }
        byte[] data;
        try
        {
            data = await System.IO.File.ReadAllBytesAsync(path, cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException("INVALID_ARGUMENT", $"cannot read {path}: {e.Message}", e);
        }
        var plan = AudioPlan.ForFile(data, o.Encoding, o.SampleRate, o.ChunkMs);
        return new AudioSource(path)
        {
            Encoding = plan.Encoding,
            SampleRate = plan.SampleRate,
            Channels = plan.Channels,
            ByteRate = plan.ByteRate,
            _file = data.AsMemory(plan.PayloadOffset, plan.PayloadLength),
        };
    }

    static async Task<AudioSource> OpenUrlAsync(string url, Options o, CancellationToken cancellationToken)
    {
        var source = new AudioSource(url) { Encoding = o.Encoding, SampleRate = o.SampleRate };
        source.ByteRate = AudioPlan.RawByteRate(source.Encoding, source.SampleRate, 0);
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

    /// <summary>
    /// Reads the next chunk: a full one from a file, what has arrived from stdin or an HTTP
    /// stream, in whole sample frames (a frame cut short waits for its rest; a stream that ends
    /// within a frame sends what it has). 0 at the end of the audio. <paramref name="buffer"/>
    /// must hold at least one frame (<see cref="ChunkBytes"/> does).
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
        var held = _partial.Length;
        _partial.CopyTo(buffer, 0);
        _partial = [];
        while (true)
        {
            int read;
            try
            {
                read = await _stream.ReadAsync(buffer.AsMemory(held), cancellationToken);
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                cancellationToken.ThrowIfCancellationRequested(); // Ctrl+C, not a failure
                throw new InputException("UNAVAILABLE", $"cannot read {Label}: {e.Message}", e);
            }
            if (read == 0)
            {
                return held; // the end: a truncated last frame goes as it is, the gateway judges it
            }
            held += read;
            var whole = AudioPlan.WholeFrames(held, FrameBytes);
            if (whole > 0)
            {
                _partial = buffer.AsSpan(whole, held - whole).ToArray();
                return whole;
            }
            // Less than one frame so far: read on, into the same buffer (no chunk to send yet).
        }
    }

    public void Dispose()
    {
        _stream?.Dispose();
        _response?.Dispose();
        _http?.Dispose();
    }
}
