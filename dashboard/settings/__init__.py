"""Where settings come from and how they are read: appsettings.json and the environment
(.NET rules), the typed settings, connection strings."""
