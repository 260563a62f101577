package org.example;

import java.util.List;
import java.util.Map;

/** The greeter API served and called by the Java peers (the Rust examples' Greeter, plus type cases). */
public interface Greeter {
    /** Answers "Hello, " + name + " from java" (or from the provider's --name). */
    String sayHello(String name);

    /** Answers an id of quantity * 1000 + the number of tags; rejects quantity <= 0. */
    OrderId placeOrder(Order order) throws OrderRejected;

    /** Returns after millis milliseconds. */
    void sleep(long millis);

    /** Answers its argument. */
    List<String> echoList(List<String> values);

    /** Answers its argument. */
    Map<String, Integer> echoMap(Map<String, Integer> values);

    /** Answers its argument, which may be null. */
    String echoNullable(String value);
}
