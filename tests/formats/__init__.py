"""Unit and property tests of `pum.formats`, on ClamAV's real signed test databases."""
