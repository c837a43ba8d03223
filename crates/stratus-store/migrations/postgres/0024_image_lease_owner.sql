-- An image is imported by one replica at a time, under a lease in its row.
ALTER TABLE images ADD COLUMN lease_owner TEXT;
