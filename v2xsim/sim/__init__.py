"""The SimPy co-simulation: world, traffic, RSU alignment loops, accounting."""
