#!/usr/bin/env bash
# Builds the Java Apache Dubbo peers of the interoperability tests (tests/java/dubbo-greeter)
# into target/java-peers/: build/dubbo-greeter.jar and classpath.txt (its dependencies, in
# the Maven repository target/m2). The tests run them with `java -cp`.
#
# Skipped when target/java-peers/stamp is newer than every file of tests/java/dubbo-greeter
# and this script. Needs `java` (17+) and `mvn`, and Maven Central on the first run.
#
#   tests/java/build.sh          # build when out of date
#   tests/java/build.sh --force  # build anyway
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
project="$root/tests/java/dubbo-greeter"
out="$root/target/java-peers"
stamp="$out/stamp"

for tool in java javac mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' is missing: the Java Dubbo peers need a JDK 17 and Maven" \
            "(Debian: apt-get install -y default-jdk-headless maven; or run ./scripts/test.sh, which installs them)" >&2
        exit 1
    fi
done

if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] && [ -f "$out/classpath.txt" ] &&
    [ -f "$out/build/dubbo-greeter.jar" ] &&
    [ -z "$(find "$project/pom.xml" "$project/src" "$0" -newer "$stamp" -print -quit)" ]; then
    exit 0
fi

echo "building the Java Dubbo peers into target/java-peers (Maven; dependencies cached in target/m2)"
mkdir -p "$out"
rm -f "$stamp"
start=$(date +%s)
# -B: no colours or progress; -q: errors only; jansi.noreset: no stray reset codes on stdout.
# dependency:build-classpath writes classpath.txt.
if ! MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true" mvn -B -q -Dstyle.color=never -f "$project/pom.xml" -Dmaven.repo.local="$root/target/m2" \
    package dependency:build-classpath; then
    echo "error: the Maven build of tests/java/dubbo-greeter failed (see above); the Java interop tests need it" >&2
    exit 1
fi
touch "$stamp"
echo "built the Java Dubbo peers in $(($(date +%s) - start)) s"
