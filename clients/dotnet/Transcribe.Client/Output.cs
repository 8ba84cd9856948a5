using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Transcribe.V1;

namespace Transcribe.Client;

/// <summary>What the sample programs print, the same in every client language.</summary>
public static class Output
{
    public const string InterimPrefix = "~ ";

    static readonly JsonSerializerOptions CompactJson = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// The output line for one response, or null when it prints nothing: a final transcript alone,
    /// an interim one after <see cref="InterimPrefix"/> with <paramref name="interim"/>, or with
    /// <paramref name="json"/> every response as one line of canonical proto3 JSON.
    /// </summary>
    public static string? Render(StreamTranscribeResponse response, bool interim, bool json)
    {
        if (json)
        {
            // Google.Protobuf's proto3 JSON mapping, compacted to one line.
            return JsonNode.Parse(JsonFormatter.Default.Format(response))!.ToJsonString(CompactJson);
        }
        if (response.ResponseCase != StreamTranscribeResponse.ResponseOneofCase.Result ||
            response.Result.Alternatives.Count == 0)
        {
            return null;
        }
        var text = response.Result.Alternatives[0].Transcript.Trim();
        if (text.Length == 0)
        {
            return null;
        }
        if (response.Result.IsFinal)
        {
            return text;
        }
        return interim ? InterimPrefix + text : null;
    }

    /// <summary>The stderr line for a failure, with its newline.</summary>
    public static string ErrorLine(string statusName, string message) => $"error: {statusName}: {message}\n";

    /// <summary>A status code's canonical name, e.g. INVALID_ARGUMENT for InvalidArgument.</summary>
    public static string StatusName(StatusCode code)
    {
        var name = code.ToString();
        var snake = new System.Text.StringBuilder();
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]) && char.IsLower(name[i - 1]))
            {
                snake.Append('_');
            }
            snake.Append(char.ToUpperInvariant(name[i]));
        }
        return snake.ToString();
    }
}
