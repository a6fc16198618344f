"""Small helpers every layer may use: sources (paths or URLs), the ffmpeg binary, devices, strict configs,
plotting. Imports neither torch nor Beam at module level, and nothing else of cadenza's but itself.
"""
