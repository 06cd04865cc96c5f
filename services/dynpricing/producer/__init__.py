"""The demand producer: synthetic ride requests and driver supply per location."""
