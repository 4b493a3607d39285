"""reprsim.extraction"""
