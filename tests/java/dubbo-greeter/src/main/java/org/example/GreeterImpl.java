package org.example;

import java.util.List;
import java.util.Map;

/** The provider's implementation. */
public class GreeterImpl implements Greeter {
    private final String name;

    public GreeterImpl(String name) { this.name = name; }

    @Override
    public String sayHello(String who) { return "Hello, " + who + " from " + name; }

    @Override
    public OrderId placeOrder(Order order) throws OrderRejected {
        if (order.getQuantity() <= 0) {
            throw new OrderRejected("quantity must be positive, got " + order.getQuantity()
                    + " for " + order.getItem());
        }
        int tags = order.getTags() == null ? 0 : order.getTags().size();
        return new OrderId(order.getQuantity() * 1000L + tags);
    }

    @Override
    public void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public List<String> echoList(List<String> values) { return values; }

    @Override
    public Map<String, Integer> echoMap(Map<String, Integer> values) { return values; }

    @Override
    public String echoNullable(String value) { return value; }
}
