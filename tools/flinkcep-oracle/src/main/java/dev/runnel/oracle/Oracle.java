package dev.runnel.oracle;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.flink.api.common.state.AggregatingState;
import org.apache.flink.api.common.state.AggregatingStateDescriptor;
import org.apache.flink.api.common.state.KeyedStateStore;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ReducingState;
import org.apache.flink.api.common.state.ReducingStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.cep.nfa.NFA;
import org.apache.flink.cep.nfa.NFAState;
import org.apache.flink.cep.nfa.aftermatch.AfterMatchSkipStrategy;
import org.apache.flink.cep.nfa.compiler.NFACompiler;
import org.apache.flink.cep.nfa.sharedbuffer.SharedBuffer;
import org.apache.flink.cep.nfa.sharedbuffer.SharedBufferAccessor;
import org.apache.flink.cep.pattern.Pattern;
import org.apache.flink.cep.pattern.conditions.IterativeCondition;
import org.apache.flink.cep.time.TimerService;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Runs Apache Flink's own CEP NFA over cases read as JSON lines on stdin and prints one JSON line
 * of matches per case: the oracle of test/cep/differential.test.ts. Each key is driven the way
 * Flink's CepOperator drives it in event time: events buffered by timestamp, then per timestamp in
 * ascending order advanceTime(ts) followed by process() of that timestamp's events in arrival
 * order, and a final advanceTime(Long.MAX_VALUE) for the end-of-input watermark.
 *
 * <p>bench/cep.ts times FlinkCEP with {@link CepBench}.
 */
public final class Oracle {
    static final ObjectMapper JSON = new ObjectMapper();

    /** One input event: only the fields the generated conditions read. */
    static final class Ev {
        final int idx;
        final String type;
        final double v;

        Ev(int idx, String type, double v) {
            this.idx = idx;
            this.type = type;
            this.v = v;
        }

        @Override
        public String toString() {
            return type + idx;
        }
    }

    /** A condition as the generator writes it: type IN (...) [AND v >= min] [AND sum(self.v) + v <= max]. */
    static final class Cond extends IterativeCondition<Ev> {
        final List<String> types;
        final Double minV;
        final Double sumMax;
        final String self;

        Cond(JsonNode node, String self) {
            this.types = new ArrayList<>();
            for (JsonNode t : node.get("types")) types.add(t.asText());
            this.minV = node.hasNonNull("minV") ? node.get("minV").asDouble() : null;
            this.sumMax = node.hasNonNull("sumMax") ? node.get("sumMax").asDouble() : null;
            this.self = self;
        }

        @Override
        public boolean filter(Ev e, Context<Ev> ctx) throws Exception {
            if (!types.contains(e.type)) return false;
            if (minV != null && !(e.v >= minV)) return false;
            if (sumMax != null) {
                double sum = e.v;
                for (Ev p : ctx.getEventsForPattern(self)) sum += p.v;
                if (!(sum <= sumMax)) return false;
            }
            return true;
        }
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            JsonNode c = JSON.readTree(line);
            ObjectNode result = JSON.createObjectNode();
            result.set("id", c.get("id"));
            try {
                runCase(c, result);
            } catch (Throwable t) {
                result.put("error", t.getClass().getSimpleName() + ": " + t.getMessage());
            }
            out.println(JSON.writeValueAsString(result));
            out.flush();
        }
        // Flink's metric and cache helpers may leave non-daemon threads behind.
        System.exit(0);
    }

    static Pattern<Ev, Ev> buildPattern(JsonNode c) {
        AfterMatchSkipStrategy skip = skipOf(c.get("skip").asText());
        Pattern<Ev, Ev> p = null;
        for (JsonNode s : c.get("steps")) {
            String name = s.get("name").asText();
            String contiguity = s.get("contiguity").asText();
            if (p == null) p = Pattern.<Ev>begin(name, skip);
            else {
                switch (contiguity) {
                    case "next": p = p.next(name); break;
                    case "followedByAny": p = p.followedByAny(name); break;
                    case "notNext": p = p.notNext(name); break;
                    case "notFollowedBy": p = p.notFollowedBy(name); break;
                    default: p = p.followedBy(name);
                }
            }
            p = p.where(new Cond(s.get("where"), name));
            JsonNode q = s.get("quantifier");
            String kind = q.get("kind").asText();
            switch (kind) {
                case "times": p = p.times(q.get("from").asInt()); break;
                case "range": p = p.times(q.get("from").asInt(), q.get("to").asInt()); break;
                case "oneOrMore": p = p.oneOrMore(); break;
                case "timesOrMore": p = p.timesOrMore(q.get("from").asInt()); break;
                default: break;
            }
            if (s.path("consecutive").asBoolean(false)) p = p.consecutive();
            if (s.path("allowCombinations").asBoolean(false)) p = p.allowCombinations();
            if (s.path("optional").asBoolean(false)) p = p.optional();
            if (s.path("greedy").asBoolean(false)) p = p.greedy();
            if (s.hasNonNull("until")) p = p.until(new Cond(s.get("until"), name));
        }
        if (c.hasNonNull("within")) p = p.within(Duration.ofMillis(c.get("within").asLong()));
        return p;
    }

    static AfterMatchSkipStrategy skipOf(String s) {
        if (s.equals("to_next")) return AfterMatchSkipStrategy.skipToNext();
        if (s.equals("past_last_event")) return AfterMatchSkipStrategy.skipPastLastEvent();
        if (s.startsWith("to_first:")) return AfterMatchSkipStrategy.skipToFirst(s.substring(9));
        if (s.startsWith("to_last:")) return AfterMatchSkipStrategy.skipToLast(s.substring(8));
        return AfterMatchSkipStrategy.noSkip();
    }

    static final TimerService TIMER = () -> 0L;

    /** Per-key state: Flink's NFA with its own state and a heap-backed shared buffer. */
    static final class Keyed {
        final NFAState state;
        final SharedBuffer<Ev> buffer;

        Keyed(NFA<Ev> nfa) {
            this.state = nfa.createInitialNFAState();
            this.buffer = new SharedBuffer<>(new HeapStore(), new EvSerializer());
        }
    }

    static void runCase(JsonNode c, ObjectNode result) throws Exception {
        Pattern<Ev, Ev> pattern = buildPattern(c);
        boolean timeouts = c.path("timeouts").asBoolean(false);
        NFACompiler.NFAFactory<Ev> factory = NFACompiler.compileFactory(pattern, timeouts);
        AfterMatchSkipStrategy skip = pattern.getAfterMatchSkipStrategy();
        ArrayNode matches = result.putArray("matches");
        ArrayNode timedOut = result.putArray("timeouts");
        Map<String, TreeMap<Long, List<Ev>>> byKey = new LinkedHashMap<>();
        int idx = 0;
        for (JsonNode e : c.get("events")) {
            Ev ev = new Ev(idx++, e.get("type").asText(), e.get("v").asDouble());
            byKey.computeIfAbsent(e.path("k").asText("k"), k -> new TreeMap<>())
                    .computeIfAbsent(e.get("ts").asLong(), t -> new ArrayList<>())
                    .add(ev);
        }
        for (TreeMap<Long, List<Ev>> events : byKey.values()) {
            NFA<Ev> nfa = factory.createNFA();
            Keyed k = new Keyed(nfa);
            for (Map.Entry<Long, List<Ev>> at : events.entrySet()) {
                advance(nfa, k, at.getKey(), skip, matches, timedOut);
                for (Ev ev : at.getValue()) {
                    try (SharedBufferAccessor<Ev> acc = k.buffer.getAccessor()) {
                        for (Map<String, List<Ev>> m : nfa.process(acc, k.state, ev, at.getKey(), skip, TIMER)) {
                            matches.add(toJson(m));
                        }
                    }
                }
            }
            advance(nfa, k, Long.MAX_VALUE, skip, matches, timedOut);
        }
    }

    static void advance(NFA<Ev> nfa, Keyed k, long ts, AfterMatchSkipStrategy skip, ArrayNode matches, ArrayNode timedOut)
            throws Exception {
        try (SharedBufferAccessor<Ev> acc = k.buffer.getAccessor()) {
            Tuple2<Collection<Map<String, List<Ev>>>, Collection<Tuple2<Map<String, List<Ev>>, Long>>> r =
                    nfa.advanceTime(acc, k.state, ts, skip);
            for (Map<String, List<Ev>> m : r.f0) matches.add(toJson(m));
            for (Tuple2<Map<String, List<Ev>>, Long> t : r.f1) {
                ObjectNode o = JSON.createObjectNode();
                o.set("match", toJson(t.f0));
                o.put("ts", t.f1);
                timedOut.add(o);
            }
        }
    }

    static ObjectNode toJson(Map<String, List<Ev>> m) {
        ObjectNode o = JSON.createObjectNode();
        for (Map.Entry<String, List<Ev>> e : m.entrySet()) {
            ArrayNode a = o.putArray(e.getKey());
            for (Ev ev : e.getValue()) a.add(ev.idx);
        }
        return o;
    }

    /** Events are compared by identity in the NFA's heap state; a serializer is only asked for copies. */
    static final class EvSerializer extends org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton<Ev> {
        @Override public boolean isImmutableType() { return true; }
        @Override public Ev createInstance() { return null; }
        @Override public Ev copy(Ev from) { return from; }
        @Override public Ev copy(Ev from, Ev reuse) { return from; }
        @Override public int getLength() { return -1; }
        @Override public void serialize(Ev record, org.apache.flink.core.memory.DataOutputView target) { throw new UnsupportedOperationException(); }
        @Override public Ev deserialize(org.apache.flink.core.memory.DataInputView source) { throw new UnsupportedOperationException(); }
        @Override public Ev deserialize(Ev reuse, org.apache.flink.core.memory.DataInputView source) { throw new UnsupportedOperationException(); }
        @Override public void copy(org.apache.flink.core.memory.DataInputView source, org.apache.flink.core.memory.DataOutputView target) { throw new UnsupportedOperationException(); }
        @Override public org.apache.flink.api.common.typeutils.TypeSerializerSnapshot<Ev> snapshotConfiguration() { throw new UnsupportedOperationException(); }
    }

    /** Keyed state on the heap, scoped to {@code currentKey}, as a heap keyed state backend scopes it. */
    static final class KeyedHeapStore implements KeyedStateStore {
        String currentKey = "";
        @Override public <T> ValueState<T> getState(ValueStateDescriptor<T> d) { throw new UnsupportedOperationException(); }
        @Override public <T> ListState<T> getListState(ListStateDescriptor<T> d) { throw new UnsupportedOperationException(); }
        @Override public <T> ReducingState<T> getReducingState(ReducingStateDescriptor<T> d) { throw new UnsupportedOperationException(); }
        @Override public <IN, ACC, OUT> AggregatingState<IN, OUT> getAggregatingState(AggregatingStateDescriptor<IN, ACC, OUT> d) { throw new UnsupportedOperationException(); }
        @Override public <UK, UV> MapState<UK, UV> getMapState(MapStateDescriptor<UK, UV> d) { return new KeyedHeapMapState<>(this); }
    }

    static final class KeyedHeapMapState<K, V> implements MapState<K, V> {
        private final KeyedHeapStore store;
        private final HashMap<String, HashMap<K, V>> byKey = new HashMap<>();
        private final HashMap<K, V> none = new HashMap<>();
        KeyedHeapMapState(KeyedHeapStore store) { this.store = store; }
        private HashMap<K, V> read() { return byKey.getOrDefault(store.currentKey, none); }
        private HashMap<K, V> write() { return byKey.computeIfAbsent(store.currentKey, k -> new HashMap<>()); }
        @Override public V get(K key) { return read().get(key); }
        @Override public void put(K key, V value) { write().put(key, value); }
        @Override public void putAll(Map<K, V> m) { write().putAll(m); }
        @Override public void remove(K key) {
            HashMap<K, V> m = byKey.get(store.currentKey);
            if (m == null) return;
            m.remove(key);
            if (m.isEmpty()) byKey.remove(store.currentKey);
        }
        @Override public boolean contains(K key) { return read().containsKey(key); }
        @Override public Iterable<Map.Entry<K, V>> entries() { return read().entrySet(); }
        @Override public Iterable<K> keys() { return read().keySet(); }
        @Override public Iterable<V> values() { return read().values(); }
        @Override public Iterator<Map.Entry<K, V>> iterator() { return read().entrySet().iterator(); }
        @Override public boolean isEmpty() { return read().isEmpty(); }
        @Override public void clear() { byKey.remove(store.currentKey); }
    }

    /** A keyed state store for one key, on the heap (the shared buffer only asks for map states). */
    static final class HeapStore implements KeyedStateStore {
        @Override public <T> ValueState<T> getState(ValueStateDescriptor<T> d) { throw new UnsupportedOperationException(); }
        @Override public <T> ListState<T> getListState(ListStateDescriptor<T> d) { throw new UnsupportedOperationException(); }
        @Override public <T> ReducingState<T> getReducingState(ReducingStateDescriptor<T> d) { throw new UnsupportedOperationException(); }
        @Override public <IN, ACC, OUT> AggregatingState<IN, OUT> getAggregatingState(AggregatingStateDescriptor<IN, ACC, OUT> d) { throw new UnsupportedOperationException(); }
        @Override public <UK, UV> MapState<UK, UV> getMapState(MapStateDescriptor<UK, UV> d) { return new HeapMapState<>(); }
    }

    static final class HeapMapState<K, V> implements MapState<K, V> {
        private final HashMap<K, V> map = new HashMap<>();
        @Override public V get(K key) { return map.get(key); }
        @Override public void put(K key, V value) { map.put(key, value); }
        @Override public void putAll(Map<K, V> m) { map.putAll(m); }
        @Override public void remove(K key) { map.remove(key); }
        @Override public boolean contains(K key) { return map.containsKey(key); }
        @Override public Iterable<Map.Entry<K, V>> entries() { return map.entrySet(); }
        @Override public Iterable<K> keys() { return map.keySet(); }
        @Override public Iterable<V> values() { return map.values(); }
        @Override public Iterator<Map.Entry<K, V>> iterator() { return map.entrySet().iterator(); }
        @Override public boolean isEmpty() { return map.isEmpty(); }
        @Override public void clear() { map.clear(); }
    }

}
