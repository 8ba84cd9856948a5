using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using Transcribe.V1;

namespace Transcribe.Client;

/// <summary>A stream ended with a non-OK gRPC status (after any resumes).</summary>
public sealed class TranscribeException : Exception
{
    public TranscribeException(
        StatusCode statusCode, string detail, string? reason = null, string? domain = null,
        ResumePoint? resumePoint = null, Exception? inner = null)
        : base($"{Output.StatusName(statusCode)}: {detail}", inner)
    {
        StatusCode = statusCode;
        Detail = detail;
        Reason = reason;
        Domain = domain;
        ResumePoint = resumePoint;
    }

    public StatusCode StatusCode { get; }

    /// <summary>The canonical status name, such as <c>UNAVAILABLE</c>.</summary>
    public string StatusName => Output.StatusName(StatusCode);

    /// <summary>The status message.</summary>
    public string Detail { get; }

    /// <summary>The <c>google.rpc.ErrorInfo</c> reason, such as <c>DRAINING</c>, if the gateway sent one.</summary>
    public string? Reason { get; }

    public string? Domain { get; }

    /// <summary>Where the stream can be resumed, if the gateway said.</summary>
    public ResumePoint? ResumePoint { get; }

    /// <summary>The error of a failed call, with what its <c>grpc-status-details-bin</c> trailer says.</summary>
    public static TranscribeException FromRpc(RpcException e)
    {
        // Grpc.StatusProto reads the google.rpc.Status in the grpc-status-details-bin trailer.
        var status = e.GetRpcStatus();
        if (status is null)
        {
            return new TranscribeException(e.StatusCode, e.Status.Detail, inner: e);
        }
        var info = FindDetail<ErrorInfo>(status);
        return new TranscribeException(
            e.StatusCode, e.Status.Detail, info?.Reason, info?.Domain, FindDetail<ResumePoint>(status), e);
    }

    /// <summary>The error a <c>google.rpc.Status</c> (the trailer's content) describes.</summary>
    public static TranscribeException FromStatus(Google.Rpc.Status status)
    {
        var info = FindDetail<ErrorInfo>(status);
        return new TranscribeException(
            (StatusCode)status.Code, status.Message, info?.Reason, info?.Domain, FindDetail<ResumePoint>(status));
    }

    /// <summary>The first detail of type <typeparamref name="T"/> in <paramref name="status"/>, or null.</summary>
    static T? FindDetail<T>(Google.Rpc.Status status) where T : class, IMessage, new()
    {
        foreach (var any in status.Details)
        {
            if (any.TryUnpack<T>(out var message))
            {
                return message;
            }
        }
        return null;
    }
}
