"""The warehouse lab: every connection BigQuery, pandas-gbq, google-auth and Snowflake open,
classified against the route (issue 10)."""
