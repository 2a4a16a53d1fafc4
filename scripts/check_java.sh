#!/usr/bin/env bash
# Spark 4 needs Java 17 or newer: fail early with a clear message instead of a JVM stack trace.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  echo "error: Java 17 or newer is required (Spark runs on the JVM) and 'java' is not on PATH." >&2
  echo "       Install a JDK 17+ (e.g. 'apt-get install openjdk-17-jre-headless') and retry." >&2
  exit 1
fi
version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${version%%.*}
[ "$major" = "1" ] && major=$(echo "$version" | cut -d. -f2)
if [ "${major:-0}" -lt 17 ] 2>/dev/null; then
  echo "error: Java $version found; Spark 4 needs Java 17 or newer. Set JAVA_HOME/PATH to a JDK 17+." >&2
  exit 1
fi
