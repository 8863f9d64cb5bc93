"""The event stream: the consumer thread, its reconnect policy, the SSE parser, the
chunked decoder, the transport (every reach into requests'/urllib3's internals) and the pacer."""
