"""The cache's vocabulary: client requests and replies, peer messages, their codecs,
errors, versions (the hybrid logical clock) and records. Pure data and pure functions."""
