// Constants the CLI needs before it loads gRPC (lib/client.js), which takes a while to import.

export const DEFAULT_ADDR = '127.0.0.1:50051';
