"""reprsim.engine"""
