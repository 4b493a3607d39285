"""reprsim.corpus"""
