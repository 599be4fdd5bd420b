// Placeholder: the parser lands in its own change.
