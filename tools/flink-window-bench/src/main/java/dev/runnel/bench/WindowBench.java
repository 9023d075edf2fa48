package dev.runnel.bench;

import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.java.functions.KeySelector;

/**
 * What the Flink side of bench/stream-window.ts shares between its operator run
 * (WindowOperatorBench) and its job run (WindowJobBench): the event, the count+sum aggregate and
 * the key. Events follow the TypeScript benchmark (bench/lib/window-workload.ts): user u{i % keys},
 * amount i % 100, time T0 + floor(i / n * (n / keys / 10) * 60000).
 */
public final class WindowBench {
  static final long T0 = 1704067200000L; // 2024-01-01T00:00:00Z, as the TypeScript benchmark
  static final int EVENTS_PER_KEY_PER_WINDOW = 10;

  private WindowBench() {}

  /** An event as the TypeScript benchmark decodes it: a user id, an amount, an event time. */
  public static final class Event {
    public String userId;
    public long amount;
    public long time;

    public Event() {}

    public Event(String userId, long amount, long time) {
      this.userId = userId;
      this.amount = amount;
      this.time = time;
    }
  }

  /** count(*) and sum(amount) in a long[2] accumulator. */
  static final class CountSum implements AggregateFunction<Event, long[], long[]> {
    @Override
    public long[] createAccumulator() {
      return new long[2];
    }

    @Override
    public long[] add(Event e, long[] acc) {
      acc[0]++;
      acc[1] += e.amount;
      return acc;
    }

    @Override
    public long[] getResult(long[] acc) {
      return acc;
    }

    @Override
    public long[] merge(long[] a, long[] b) {
      a[0] += b[0];
      a[1] += b[1];
      return a;
    }
  }

  static final class ByUser implements KeySelector<Event, String> {
    @Override
    public String getKey(Event e) {
      return e.userId;
    }
  }
}
