"""Executors: where a campaign's runs happen (this host, a VM booted on a chosen kernel)."""
