"""Fair access for hyped sales: waiting rooms, draws, passes, proof of work."""
