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
        // Grpc.StatusProto reads the rich status from the trailers.
        var status = e.GetRpcStatus();
        if (status is null)
        {
            return new TranscribeException(e.StatusCode, e.Status.Detail, inner: e);
        }
        var info = status.GetDetail<ErrorInfo>();
        return new TranscribeException(
            e.StatusCode, e.Status.Detail, info?.Reason, info?.Domain, status.GetDetail<ResumePoint>(), e);
    }

    /// <summary>The error a <c>google.rpc.Status</c> (the trailer's content) describes.</summary>
    public static TranscribeException FromStatus(Google.Rpc.Status status)
    {
        var info = status.GetDetail<ErrorInfo>();
        return new TranscribeException(
            (StatusCode)status.Code, status.Message, info?.Reason, info?.Domain, status.GetDetail<ResumePoint>());
    }
}
