"""Exchange adapters behind one port: the in-process paper exchange and ccxt."""
