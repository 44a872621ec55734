"""The one method contract, the registry of methods (MT-CRL and every baseline), gradient surgery and the
torchjd aggregators."""
