//! Worked examples of using NexusSale as a library: see `examples/`.
