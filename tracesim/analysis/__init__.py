"""Analyses over results: experiments, tables and plots."""
