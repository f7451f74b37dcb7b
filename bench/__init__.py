"""blkcmp: benchmark the Rust block driver (rnull) against the C one (null_blk) with fio."""

__version__ = "0.1.0"
