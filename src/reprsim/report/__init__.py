"""reprsim.report"""
