using Transcribe.V1;

namespace TranscribeCli;

/// <summary>A bad command line: the program prints it and exits with code 2.</summary>
sealed class UsageException(string message) : Exception(message);

/// <summary>The command-line flags, the same in every language's sample client.</summary>
sealed class Options
{
    public const string Usage = """
        usage: transcribe (--file PATH | --url URL) [flags]

        Streams audio to the transcription gateway and prints the final transcripts.

          --addr HOST:PORT      gateway address (default 127.0.0.1:50051)
          --file PATH           audio file to stream; a 16-bit PCM WAV file is sent as raw linear16;
                                - for stdin, sent as it arrives (needs --encoding and --sample-rate)
          --url URL             HTTP audio stream to relay, e.g. an internet radio station
          --model NAME          model name, e.g. nova-3 (default: the upstream's default)
          --language TAG        BCP-47 language tag, e.g. en-US (default: en)
          --interim             also print interim transcripts, prefixed by "~ "
          --smart-format        ask for smart formatting
          --diarize             ask for speaker labels
          --token TOKEN         client token, sent as "authorization: Bearer TOKEN" (default: $TRANSCRIBE_TOKEN)
          --tls                 connect with TLS, trusting the system's root certificates
          --ca-file PATH        with TLS, trust the PEM certificates in PATH instead (implies --tls)
          --fast                send audio as fast as possible instead of at real-time pace
          --json                print every response as one JSON object per line
          --encoding ENCODING   raw audio encoding, e.g. linear16, mulaw (default: WAV header or containerised)
          --sample-rate HZ      sample rate of raw audio
          --chunk-ms MS         audio per message (default 50)
          --no-resume           do not resume a stream the gateway ends for a drain
        """;

    public string Addr { get; private set; } = "127.0.0.1:50051";
    public string? File { get; private set; }
    public string? Url { get; private set; }
    public string Model { get; private set; } = "";
    public string Language { get; private set; } = "";
    public bool Interim { get; private set; }
    public bool SmartFormat { get; private set; }
    public bool Diarize { get; private set; }
    public string? Token { get; private set; }
    public bool Tls { get; private set; }
    public string? CaFile { get; private set; }
    public bool Fast { get; private set; }
    public bool Json { get; private set; }
    public AudioEncoding Encoding { get; private set; } = AudioEncoding.Unspecified;
    public uint SampleRate { get; private set; }
    public int ChunkMs { get; private set; } = 50;
    public bool Resume { get; private set; } = true;

    /// <summary>Parses the command line; returns null for --help.</summary>
    public static Options? Parse(IReadOnlyList<string> args)
    {
        var o = new Options();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "-h" or "--help")
            {
                return null;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new UsageException($"unexpected argument \"{arg}\"");
            }
            var name = arg[2..];
            string? inlineValue = null;
            var equals = name.IndexOf('=');
            if (equals >= 0)
            {
                inlineValue = name[(equals + 1)..];
                name = name[..equals];
            }
            string Value()
            {
                if (inlineValue is not null)
                {
                    return inlineValue;
                }
                if (i + 1 >= args.Count)
                {
                    throw new UsageException($"flag needs an argument: --{name}");
                }
                return args[++i];
            }
            switch (name)
            {
                case "addr": o.Addr = Value(); break;
                case "file": o.File = Value(); break;
                case "url": o.Url = Value(); break;
                case "model": o.Model = Value(); break;
                case "language": o.Language = Value(); break;
                case "token": o.Token = Value(); break;
                case "ca-file": o.CaFile = Value(); break;
                case "encoding": o.Encoding = ParseEncoding(Value()); break;
                case "sample-rate": o.SampleRate = ParseNumber<uint>(name, Value(), 0); break;
                case "chunk-ms": o.ChunkMs = ParseNumber<int>(name, Value(), 1); break;
                case "interim": o.Interim = true; break;
                case "smart-format": o.SmartFormat = true; break;
                case "diarize": o.Diarize = true; break;
                case "tls": o.Tls = true; break;
                case "fast": o.Fast = true; break;
                case "json": o.Json = true; break;
                case "no-resume": o.Resume = false; break;
                default: throw new UsageException($"flag provided but not defined: --{name}");
            }
        }
        if ((o.File is null) == (o.Url is null))
        {
            throw new UsageException("exactly one of --file and --url is required");
        }
        if (o.File == "-" && (o.Encoding == AudioEncoding.Unspecified || o.SampleRate == 0))
        {
            throw new UsageException("--file - (stdin) needs --encoding and --sample-rate");
        }
        return o;
    }

    /// <summary>Maps a Deepgram encoding name (linear16, amr-nb, ogg-opus...) to the enum.</summary>
    static AudioEncoding ParseEncoding(string name)
    {
        var key = name.Replace("-", "").Replace("_", "");
        if (key.Length > 0 && key.All(char.IsAsciiLetterOrDigit) && !key.All(char.IsAsciiDigit) &&
            Enum.TryParse<AudioEncoding>(key, ignoreCase: true, out var encoding) &&
            Enum.IsDefined(encoding) && encoding != AudioEncoding.Unspecified)
        {
            return encoding;
        }
        throw new UsageException($"unknown --encoding \"{name}\"");
    }

    static T ParseNumber<T>(string name, string text, T minimum)
        where T : struct, IComparable<T>, IParsable<T>
    {
        if (T.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var value) &&
            value.CompareTo(minimum) >= 0)
        {
            return value;
        }
        throw new UsageException($"invalid value \"{text}\" for --{name}");
    }
}
