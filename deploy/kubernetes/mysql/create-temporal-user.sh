# Sourced by the mysql image's entrypoint on its first start (empty data directory), after it
# created the premiscale database and user: adds Temporal's user, which may create and own the
# temporal and temporal_visibility databases (the temporal-schema Job creates them).
docker_process_sql --database=mysql <<-EOSQL
	CREATE USER IF NOT EXISTS 'temporal'@'%' IDENTIFIED BY '${TEMPORAL_MYSQL_PASSWORD}';
	GRANT ALL PRIVILEGES ON \`temporal\`.* TO 'temporal'@'%';
	GRANT ALL PRIVILEGES ON \`temporal_visibility\`.* TO 'temporal'@'%';
EOSQL
