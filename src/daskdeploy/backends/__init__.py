"""Built-in backends. Each module holds one backend; none imports another."""
