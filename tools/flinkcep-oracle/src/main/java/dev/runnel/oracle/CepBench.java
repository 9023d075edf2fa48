package dev.runnel.oracle;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.cep.functions.PatternProcessFunction;
import org.apache.flink.cep.nfa.NFA;
import org.apache.flink.cep.nfa.NFAState;
import org.apache.flink.cep.nfa.aftermatch.AfterMatchSkipStrategy;
import org.apache.flink.cep.nfa.compiler.NFACompiler;
import org.apache.flink.cep.nfa.sharedbuffer.SharedBuffer;
import org.apache.flink.cep.nfa.sharedbuffer.SharedBufferAccessor;
import org.apache.flink.cep.operator.CepOperator;
import org.apache.flink.cep.pattern.Pattern;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.util.Collector;

/**
 * Times FlinkCEP over one case read as a JSON line on stdin (bench/cep.ts), in one of two modes:
 *
 * <ul>
 *   <li>{@code operator}: FlinkCEP's real {@link CepOperator} in Flink's keyed operator test
 *       harness (heap keyed state backend, event-time timer service, one thread), as a keyed
 *       {@code CEP.pattern(...).process(...)} runs it in a job: each event is buffered in keyed
 *       state until a watermark passes it; a watermark (last timestamp - 1) follows every
 *       {@code watermarkEvery} events, and Long.MAX_VALUE ends the input;
 *   <li>{@code nfa}: Flink's NFA alone, one shared buffer over keyed heap state, advanceTime(ts)
 *       then process(event) per event, as the CepOperator does for in-order input.
 * </ul>
 *
 * Every round starts from empty state; all rounds are timed (wall and process CPU time, from the
 * end of the set-up: the harness built and opened, the pattern compiled) so the
 * caller can drop the warm-up round and take medians. Matches are reported as a SHA-256 over the
 * sorted lines "key|id,id,..." (ids ascending), the same lines bench/cep.ts hashes for Runnel.
 * Prints one JSON line.
 */
public final class CepBench {
    static String[] keys;
    static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    /** Set by each mode once its set-up is done, where the round's timing starts. */
    static long startNanos;
    static long startCpu;

    static void start() {
        startCpu = OS.getProcessCpuTime();
        startNanos = System.nanoTime();
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        JsonNode c = Oracle.JSON.readTree(in.readLine());
        ObjectNode result = Oracle.JSON.createObjectNode();
        try {
            run(c, result);
        } catch (Throwable t) {
            result.put("error", t.getClass().getSimpleName() + ": " + t.getMessage());
        }
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        out.println(Oracle.JSON.writeValueAsString(result));
        out.flush();
        // Flink's metric and cache helpers may leave non-daemon threads behind.
        System.exit(0);
    }

    static void run(JsonNode c, ObjectNode result) throws Exception {
        String mode = c.get("mode").asText();
        JsonNode events = c.get("events");
        int n = events.size();
        keys = new String[n];
        long[] ts = new long[n];
        Oracle.Ev[] evs = new Oracle.Ev[n];
        for (int i = 0; i < n; i++) {
            JsonNode e = events.get(i);
            keys[i] = e.get("k").asText();
            ts[i] = e.get("ts").asLong();
            evs[i] = new Oracle.Ev(i, e.get("type").asText(), e.get("v").asDouble());
        }
        int rounds = c.path("rounds").asInt(2);
        int watermarkEvery = c.path("watermarkEvery").asInt(1000);
        com.sun.management.OperatingSystemMXBean os = OS;
        var seconds = result.putArray("roundSeconds");
        var cpu = result.putArray("cpuSeconds");
        List<String> lines = null;
        for (int r = 0; r < rounds; r++) {
            lines = new ArrayList<>();
            if (mode.equals("operator")) runOperator(c, ts, evs, watermarkEvery, lines);
            else runNfa(c, ts, evs, lines);
            seconds.add((System.nanoTime() - startNanos) / 1e9);
            cpu.add((os.getProcessCpuTime() - startCpu) / 1e9);
        }
        result.put("events", n);
        result.put("matches", lines.size());
        result.put("sha256", sha256(lines));
    }

    /** The CepOperator in its keyed test harness; the harness is set up and opened before timing starts. */
    static void runOperator(JsonNode c, long[] ts, Oracle.Ev[] evs, int watermarkEvery, List<String> lines)
            throws Exception {
        Pattern<Oracle.Ev, Oracle.Ev> pattern = Oracle.buildPattern(c);
        CepOperator<Oracle.Ev, String, Void> op = new CepOperator<>(
                EvSerializer.INSTANCE,
                false,
                NFACompiler.compileFactory(pattern, false),
                null,
                pattern.getAfterMatchSkipStrategy(),
                new Lines(lines),
                null);
        KeySelector<Oracle.Ev, String> byKey = e -> keys[e.idx];
        try (KeyedOneInputStreamOperatorTestHarness<String, Oracle.Ev, Void> h =
                new KeyedOneInputStreamOperatorTestHarness<>(op, byKey, Types.STRING)) {
            h.open();
            start();
            for (int i = 0; i < evs.length; i++) {
                h.processElement(new StreamRecord<>(evs[i], ts[i]));
                if ((i + 1) % watermarkEvery == 0) h.processWatermark(new Watermark(ts[i] - 1));
            }
            h.processWatermark(new Watermark(Long.MAX_VALUE));
        }
    }

    /** Flink's NFA alone over keyed heap state (as the oracle's case runner, without the operator). */
    static void runNfa(JsonNode c, long[] ts, Oracle.Ev[] evs, List<String> lines) throws Exception {
        Pattern<Oracle.Ev, Oracle.Ev> pattern = Oracle.buildPattern(c);
        NFACompiler.NFAFactory<Oracle.Ev> factory = NFACompiler.compileFactory(pattern, false);
        AfterMatchSkipStrategy skip = pattern.getAfterMatchSkipStrategy();
        // As CepOperator runs it: one SharedBuffer over keyed state scoped to the current key
        // (a SharedBuffer per key would also start a cache-statistics Timer thread per key).
        Oracle.KeyedHeapStore store = new Oracle.KeyedHeapStore();
        SharedBuffer<Oracle.Ev> buffer = new SharedBuffer<>(store, new Oracle.EvSerializer());
        Map<String, NFAState> state = new HashMap<>();
        NFA<Oracle.Ev> nfa = factory.createNFA();
        start();
        for (int i = 0; i < evs.length; i++) {
            String key = keys[i];
            store.currentKey = key;
            NFAState k = state.get(key);
            if (k == null) {
                k = nfa.createInitialNFAState();
                state.put(key, k);
            }
            try (SharedBufferAccessor<Oracle.Ev> acc = buffer.getAccessor()) {
                for (Map<String, List<Oracle.Ev>> m : nfa.advanceTime(acc, k, ts[i], skip).f0) lines.add(line(key, m));
                for (Map<String, List<Oracle.Ev>> m : nfa.process(acc, k, evs[i], ts[i], skip, Oracle.TIMER))
                    lines.add(line(key, m));
            }
        }
        for (Map.Entry<String, NFAState> e : state.entrySet()) {
            store.currentKey = e.getKey();
            try (SharedBufferAccessor<Oracle.Ev> acc = buffer.getAccessor()) {
                for (Map<String, List<Oracle.Ev>> m : nfa.advanceTime(acc, e.getValue(), Long.MAX_VALUE, skip).f0)
                    lines.add(line(e.getKey(), m));
            }
        }
        buffer.releaseCacheStatisticsTimer();
    }

    static String line(String key, Map<String, List<Oracle.Ev>> match) {
        List<Integer> ids = new ArrayList<>();
        for (List<Oracle.Ev> es : match.values()) for (Oracle.Ev e : es) ids.add(e.idx);
        Collections.sort(ids);
        StringBuilder sb = new StringBuilder(key).append('|');
        for (int i = 0; i < ids.size(); i++) sb.append(i > 0 ? "," : "").append(ids.get(i));
        return sb.toString();
    }

    static String sha256(List<String> lines) throws Exception {
        Collections.sort(lines);
        MessageDigest d = MessageDigest.getInstance("SHA-256");
        for (String l : lines) {
            d.update(l.getBytes(StandardCharsets.UTF_8));
            d.update((byte) '\n');
        }
        return HexFormat.of().formatHex(d.digest());
    }

    /** Each match becomes its line; nothing is emitted downstream. */
    static final class Lines extends PatternProcessFunction<Oracle.Ev, Void> {
        private final transient List<String> lines;

        Lines(List<String> lines) {
            this.lines = lines;
        }

        @Override
        public void processMatch(Map<String, List<Oracle.Ev>> match, Context ctx, Collector<Void> out) {
            lines.add(line(keys[match.values().iterator().next().get(0).idx], match));
        }
    }

    /**
     * A real serializer for the operator's keyed state. The heap backend keeps objects and only
     * serializes for checkpoints (none are taken here), as in a job on the HashMap state backend.
     */
    public static final class EvSerializer extends TypeSerializerSingleton<Oracle.Ev> {
        static final EvSerializer INSTANCE = new EvSerializer();

        @Override public boolean isImmutableType() { return true; }
        @Override public Oracle.Ev createInstance() { return null; }
        @Override public Oracle.Ev copy(Oracle.Ev from) { return from; }
        @Override public Oracle.Ev copy(Oracle.Ev from, Oracle.Ev reuse) { return from; }
        @Override public int getLength() { return -1; }

        @Override
        public void serialize(Oracle.Ev e, DataOutputView target) throws java.io.IOException {
            target.writeInt(e.idx);
            target.writeUTF(e.type);
            target.writeDouble(e.v);
        }

        @Override
        public Oracle.Ev deserialize(DataInputView source) throws java.io.IOException {
            return new Oracle.Ev(source.readInt(), source.readUTF(), source.readDouble());
        }

        @Override
        public Oracle.Ev deserialize(Oracle.Ev reuse, DataInputView source) throws java.io.IOException {
            return deserialize(source);
        }

        @Override
        public void copy(DataInputView source, DataOutputView target) throws java.io.IOException {
            serialize(deserialize(source), target);
        }

        @Override
        public TypeSerializerSnapshot<Oracle.Ev> snapshotConfiguration() {
            return new Snapshot();
        }

        public static final class Snapshot extends SimpleTypeSerializerSnapshot<Oracle.Ev> {
            public Snapshot() {
                super(() -> INSTANCE);
            }
        }
    }
}
