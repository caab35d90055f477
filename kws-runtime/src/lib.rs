//! kws-runtime runs users' instances as hardened Docker containers with owner networks,
//! workspaces, logs, stats and a browser IDE, behind the `Runtime` trait. Its `exec` module runs
//! untrusted code in warm, sandboxed container pools with queues, limits and streamed events.
