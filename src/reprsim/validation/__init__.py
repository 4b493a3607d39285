"""reprsim.validation"""
