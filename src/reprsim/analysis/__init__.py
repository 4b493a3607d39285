"""reprsim.analysis"""
