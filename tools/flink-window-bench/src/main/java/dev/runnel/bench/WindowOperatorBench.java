package dev.runnel.bench;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.triggers.EventTimeTrigger;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.streaming.runtime.operators.windowing.WindowOperator;
import org.apache.flink.streaming.runtime.operators.windowing.WindowOperatorBuilder;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.util.Collector;

/**
 * Operator against operator for bench/stream-window.ts: Flink's own WindowOperator (what
 * {@code keyBy(user).window(TumblingEventTimeWindows.of(1 min)).aggregate(countSum, toResult)}
 * builds) in Flink's keyed operator test harness on one thread, heap keyed state backend, over the
 * same pre-built events as the TypeScript side (user u{i % keys}, amount i % 100, time
 * T0 + floor(i * 60000 / (keys * 10))). Bounded out-of-orderness watermarks (max time - 5 s - 1)
 * follow every {@code watermarkEvery} events; Long.MAX_VALUE ends the input.
 *
 * <p>Every round starts from a new operator (opened before timing); wall and process CPU time of
 * every round are printed, warm-up rounds included, so the caller can see them stop climbing.
 * Results are hashed as sorted lines "key|window_start|count|sum" (SHA-256), as the TypeScript side
 * hashes its rows. Usage: java ... dev.runnel.bench.WindowOperatorBench events keys rounds
 * [watermarkEvery]. Prints one JSON line.
 */
public final class WindowOperatorBench {
  /** Each window result becomes its line; nothing is emitted downstream. */
  static final class ToLine extends ProcessWindowFunction<long[], Void, String, TimeWindow> {
    final transient List<String> lines;

    ToLine(List<String> lines) {
      this.lines = lines;
    }

    @Override
    public void process(String key, Context ctx, Iterable<long[]> in, Collector<Void> out) {
      long[] acc = in.iterator().next();
      lines.add(key + "|" + ctx.window().getStart() + "|" + acc[0] + "|" + acc[1]);
    }
  }

  static void runOnce(WindowBench.Event[] es, int watermarkEvery, List<String> lines, double[] wallCpu)
      throws Exception {
    WindowOperatorBuilder<WindowBench.Event, String, TimeWindow> builder = new WindowOperatorBuilder<>(
        TumblingEventTimeWindows.of(Duration.ofMinutes(1)),
        EventTimeTrigger.create(),
        new ExecutionConfig(),
        TypeInformation.of(WindowBench.Event.class),
        new WindowBench.ByUser(),
        Types.STRING);
    WindowOperator<String, WindowBench.Event, ?, Void, TimeWindow> op =
        builder.aggregate(new WindowBench.CountSum(), new ToLine(lines), TypeInformation.of(long[].class));
    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    try (KeyedOneInputStreamOperatorTestHarness<String, WindowBench.Event, Void> h =
        new KeyedOneInputStreamOperatorTestHarness<>(op, new WindowBench.ByUser(), Types.STRING)) {
      h.open();
      long cpu0 = os.getProcessCpuTime();
      long t0 = System.nanoTime();
      long maxTs = Long.MIN_VALUE;
      for (int i = 0; i < es.length; i++) {
        WindowBench.Event e = es[i];
        if (e.time > maxTs) maxTs = e.time;
        h.processElement(new StreamRecord<>(e, e.time));
        if ((i + 1) % watermarkEvery == 0) h.processWatermark(new Watermark(maxTs - 5_000 - 1));
      }
      h.processWatermark(new Watermark(Long.MAX_VALUE));
      wallCpu[0] = (System.nanoTime() - t0) / 1e9;
      wallCpu[1] = (os.getProcessCpuTime() - cpu0) / 1e9;
      // The harness keeps every watermark it forwarded; dropped with it.
    }
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

  public static void main(String[] args) throws Exception {
    int n = Integer.parseInt(args[0]);
    int keys = Integer.parseInt(args[1]);
    int rounds = Integer.parseInt(args[2]);
    int watermarkEvery = args.length > 3 ? Integer.parseInt(args[3]) : 1000;
    WindowBench.Event[] es = new WindowBench.Event[n];
    for (int i = 0; i < n; i++) {
      long t = WindowBench.T0
          + (long) Math.floor(((double) i / n) * ((double) n / keys / WindowBench.EVENTS_PER_KEY_PER_WINDOW) * 60_000);
      es[i] = new WindowBench.Event("u" + (i % keys), i % 100, t);
    }
    StringBuilder seconds = new StringBuilder();
    StringBuilder cpu = new StringBuilder();
    List<String> lines = new ArrayList<>();
    double[] wallCpu = new double[2];
    for (int r = 0; r < rounds; r++) {
      lines = new ArrayList<>();
      runOnce(es, watermarkEvery, lines, wallCpu);
      seconds.append(r > 0 ? "," : "").append(wallCpu[0]);
      cpu.append(r > 0 ? "," : "").append(wallCpu[1]);
      System.err.printf("flink WindowOperator round %d: %.0f events/s%n", r + 1, n / wallCpu[0]);
    }
    System.out.println("{\"roundSeconds\":[" + seconds + "],\"cpuSeconds\":[" + cpu + "],\"results\":" + lines.size()
        + ",\"sha256\":\"" + sha256(lines) + "\"}");
    System.exit(0);
  }
}
