package dev.runnel.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.SinkFunction;
import org.apache.flink.streaming.api.functions.source.SourceFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * The job of bench/stream-window.ts in Apache Flink: keyed tumbling 1-minute windows, count(*) and
 * sum(amount) per user, 100,000 keys, parallelism 1, event time with 5 s bounded out-of-orderness
 * watermarks. Events are generated before timing, in memory, with the same distribution as the
 * TypeScript benchmark (user u{i % keys}, amount i % 100, time T0 + floor(i * 60000 / (keys * 10))),
 * and a source emits them from that array.
 *
 * Timing: from the source's first event to the end of the window operator's input (the sink has
 * seen every result), so the mini cluster's start-up is not counted; the wall time of execute()
 * is reported as well. Usage: java ... dev.runnel.bench.WindowBench [events] [keys] [runs]
 * Prints one JSON line.
 */
public final class WindowBench {
  static final long T0 = 1704067200000L; // 2024-01-01T00:00:00Z, as the TypeScript benchmark
  static final int EVENTS_PER_KEY_PER_WINDOW = 10;

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

  /** One window result, as the SQL pipeline's row (user_id, window_start, window_end, n, total). */
  public static final class Result {
    public String userId;
    public long windowStart;
    public long windowEnd;
    public long n;
    public long total;

    public Result() {}
  }

  // The pre-generated input, shared with the source inside this JVM (a local environment runs
  // the job's tasks in-process).
  static volatile Event[] events;
  static volatile long firstEventNanos;
  static volatile long lastResultNanos;
  static volatile long results;

  /** Emits the pre-generated array; not parallel (parallelism 1). */
  @SuppressWarnings("deprecation")
  static final class ArraySource implements SourceFunction<Event> {
    private volatile boolean running = true;

    @Override
    public void run(SourceContext<Event> ctx) {
      Event[] es = events;
      firstEventNanos = System.nanoTime();
      for (int i = 0; i < es.length && running; i++) ctx.collect(es[i]);
    }

    @Override
    public void cancel() {
      running = false;
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

  static final class ToResult extends ProcessWindowFunction<long[], Result, String, TimeWindow> {
    @Override
    public void process(String key, Context ctx, Iterable<long[]> in, Collector<Result> out) {
      long[] acc = in.iterator().next();
      Result r = new Result();
      r.userId = key;
      r.windowStart = ctx.window().getStart();
      r.windowEnd = ctx.window().getEnd();
      r.n = acc[0];
      r.total = acc[1];
      out.collect(r);
    }
  }

  /** Counts results; the time of the last is the end of the run. */
  @SuppressWarnings("deprecation")
  static final class CountingSink implements SinkFunction<Result> {
    @Override
    public void invoke(Result r, Context ctx) {
      results++;
      lastResultNanos = System.nanoTime();
    }
  }

  static final class ByUser implements KeySelector<Event, String> {
    @Override
    public String getKey(Event e) {
      return e.userId;
    }
  }

  static double[] runOnce() throws Exception {
    Configuration conf = new Configuration();
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, conf);
    env.getConfig().enableObjectReuse();
    results = 0;
    env.addSource(new ArraySource(), TypeInformation.of(Event.class))
        .assignTimestampsAndWatermarks(
            WatermarkStrategy.<Event>forBoundedOutOfOrderness(Duration.ofSeconds(5))
                .withTimestampAssigner((e, ts) -> e.time))
        .keyBy(new ByUser())
        .window(TumblingEventTimeWindows.of(Duration.ofMinutes(1)))
        .aggregate(new CountSum(), new ToResult(), TypeInformation.of(long[].class),
            TypeInformation.of(long[].class), TypeInformation.of(Result.class))
        .addSink(new CountingSink());
    long t0 = System.nanoTime();
    env.execute("runnel-stream-window-bench");
    long t1 = System.nanoTime();
    double seconds = (lastResultNanos - firstEventNanos) / 1e9;
    return new double[] {events.length / seconds, events.length / ((t1 - t0) / 1e9), results};
  }

  static double median(List<Double> xs) {
    double[] s = xs.stream().mapToDouble(Double::doubleValue).toArray();
    Arrays.sort(s);
    return s[s.length / 2];
  }

  public static void main(String[] args) throws Exception {
    int n = args.length > 0 ? Integer.parseInt(args[0]) : 2_000_000;
    int keys = args.length > 1 ? Integer.parseInt(args[1]) : 100_000;
    int runs = args.length > 2 ? Integer.parseInt(args[2]) : 5;
    Event[] es = new Event[n];
    // Key strings built once per key, as the TypeScript side's decoded events share nothing but
    // are built before timing too.
    for (int i = 0; i < n; i++) {
      long t = T0 + (long) Math.floor(((double) i / n) * ((double) n / keys / EVENTS_PER_KEY_PER_WINDOW) * 60_000);
      es[i] = new Event("u" + (i % keys), i % 100, t);
    }
    events = es;
    runOnce(); // warm-up: class loading and the JIT
    List<Double> eps = new ArrayList<>();
    List<Double> wall = new ArrayList<>();
    long res = 0;
    for (int r = 0; r < runs; r++) {
      double[] x = runOnce();
      eps.add(x[0]);
      wall.add(x[1]);
      res = (long) x[2];
      System.err.printf("flink run %d: %.0f events/s (%.0f with job start-up), %d results%n", r + 1, x[0], x[1], res);
    }
    StringBuilder sb = new StringBuilder();
    sb.append("{\"engine\":\"Apache Flink ").append(org.apache.flink.runtime.util.EnvironmentInformation.getVersion())
        .append("\",\"java\":\"").append(System.getProperty("java.version"))
        .append("\",\"events\":").append(n).append(",\"keys\":").append(keys)
        .append(",\"windowResults\":").append(res)
        .append(",\"eventsPerSecond\":{\"median\":").append(Math.round(median(eps))).append(",\"runs\":[");
    for (int i = 0; i < eps.size(); i++) sb.append(i > 0 ? "," : "").append(Math.round(eps.get(i)));
    sb.append("]},\"eventsPerSecondWithJobStartup\":{\"median\":").append(Math.round(median(wall))).append(",\"runs\":[");
    for (int i = 0; i < wall.size(); i++) sb.append(i > 0 ? "," : "").append(Math.round(wall.get(i)));
    sb.append("]}}");
    System.out.println(sb);
  }
}
