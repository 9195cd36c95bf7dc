"""Routines that run the family's Pyro program: enumerated MAP, SVI and NUTS (need only the program)."""
