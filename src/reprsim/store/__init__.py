"""reprsim.store"""
