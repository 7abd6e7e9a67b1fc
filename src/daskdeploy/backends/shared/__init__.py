"""Worker and scheduler mechanisms that several backends share; none names a platform."""
