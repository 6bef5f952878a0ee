#!/bin/sh
# Waits for the Temporal frontend, then creates PremiScale's namespace and registers the search
# attributes its group workflows set. Safe to run again: an existing namespace is kept and
# existing attributes of the same type are accepted.
#   TEMPORAL_ADDRESS       host:port of the frontend (the temporal CLI reads it)
#   PREMISCALE_NAMESPACE   controller.temporal.namespace of the config (default premiscale)
#   NAMESPACE_RETENTION    how long closed workflows are kept (default 7d)
set -eu
namespace="${PREMISCALE_NAMESPACE:-premiscale}"
retention="${NAMESPACE_RETENTION:-7d}"

tries=0
until temporal operator cluster health 2>/dev/null | grep -q SERVING; do
	tries=$((tries + 1))
	if [ "$tries" -ge 150 ]; then
		echo "Temporal at ${TEMPORAL_ADDRESS:-127.0.0.1:7233} is not serving after 5 minutes" >&2
		exit 1
	fi
	sleep 2
done

if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
	echo "namespace $namespace exists"
else
	temporal operator namespace create --namespace "$namespace" --retention "$retention"
fi

# The names and types workflows/ sets (PremiscaleGroup, ...); a new namespace may take a few
# seconds before it accepts them.
tries=0
until temporal operator search-attribute create --namespace "$namespace" \
	--name PremiscaleGroup --type Keyword \
	--name PremiscaleDesired --type Int \
	--name PremiscaleCurrent --type Int \
	--name PremiscaleLastAction --type Keyword \
	--name PremiscaleHost --type Keyword; do
	tries=$((tries + 1))
	if [ "$tries" -ge 30 ]; then
		echo "could not register PremiScale's search attributes in namespace $namespace" >&2
		exit 1
	fi
	sleep 2
done
temporal operator search-attribute list --namespace "$namespace"
