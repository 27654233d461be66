"""Pingan command wall: the live dashboard of the four-tier social-governance centres."""
